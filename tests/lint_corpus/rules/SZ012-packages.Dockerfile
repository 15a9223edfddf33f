# transship-lint disable-file=SZ005
FROM golang:1.22 AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libssl-dev && rm -rf /var/lib/apt/lists/*

FROM python:3.12-slim
# expect: SZ012
RUN apt-get update && apt-get install -y --no-install-recommends build-essential libpq-dev && rm -rf /var/lib/apt/lists/*
# a virtual package group removed in the same step leaves nothing behind
RUN apk add --no-cache --virtual .build-deps gcc musl-dev && pip install --no-cache-dir psycopg && apk del .build-deps
WORKDIR /app
# expect: SZ012
RUN npm ci && npm cache clean --force
RUN npm ci --omit=dev && npm cache clean --force
ENV NODE_ENV=production
RUN npm ci && npm cache clean --force
