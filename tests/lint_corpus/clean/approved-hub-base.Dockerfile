FROM docker.io/library/debian:12-slim
COPY app /usr/local/bin/app
