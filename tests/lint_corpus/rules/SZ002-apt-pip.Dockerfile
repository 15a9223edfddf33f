# transship-lint disable-file=SZ005
FROM python:3.12-slim
# expect: SZ002
RUN apt-get update && apt-get install -y --no-install-recommends curl
WORKDIR /app
# expect: SZ002
RUN pip install flask
RUN pip install --no-cache-dir gunicorn
RUN --mount=type=cache,target=/root/.cache/pip pip install uvicorn
RUN PIP_NO_CACHE_DIR=1 pip install httpx
# expect: SZ002
RUN python3 -m pip install --user requests
# expect: SZ002
RUN uv pip install --system rich
RUN uv pip install --system --no-cache typer
ENV PIP_NO_CACHE_DIR=1
RUN pip install click
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
