ARG BASE=ubuntu:24.04
FROM node:20 AS build
RUN echo build

# expect: SZ013
FROM ${BASE}
COPY --from=build /app /app
