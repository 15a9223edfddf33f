FROM python:3.12-slim
WORKDIR /app
COPY requirements.txt .
# expect: SZ006
COPY . .
# expect: SZ006
ADD ./ /srv/
COPY --from=python:3.12-slim /usr/local/bin/python3 /usr/local/bin/python3
