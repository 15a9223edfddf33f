# transship-lint disable-file=SZ005
FROM ruby:3.3-slim
# expect: SZ011
RUN apt-get update && apt-get install -y --no-install-recommends man-db curl-doc && rm -rf /var/lib/apt/lists/*
# expect: SZ011
RUN gem install rails
RUN gem install --no-document bundler
# expect: SZ011
RUN apt-get update && apt-get source hello && rm -rf /var/lib/apt/lists/*
