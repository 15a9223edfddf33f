# transship-lint disable-file=SZ005
FROM ubuntu:24.04
# expect: SZ010
RUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*
RUN apt-get update && apt-get -y install --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
RUN apt-get update && apt-get install -y -o APT::Install-Recommends=false tzdata && rm -rf /var/lib/apt/lists/*
