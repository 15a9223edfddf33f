# transship-lint disable-file=SZ005
FROM debian:12-slim AS debug
RUN apt-get update && apt-get install -y --no-install-recommends gdb && rm -rf /var/lib/apt/lists/*

FROM debian:12-slim
# expect: SZ009
RUN apt-get update && apt-get install -y --no-install-recommends openssh-server vim && rm -rf /var/lib/apt/lists/*
# expect: SZ009
RUN pip install --no-cache-dir debugpy==1.8.0
# installed and removed in one step: nothing stays
RUN apt-get update && apt-get install -y --no-install-recommends strace && apt-get purge -y strace && rm -rf /var/lib/apt/lists/*
# expect: SZ009
EXPOSE 22/tcp
EXPOSE 8080
