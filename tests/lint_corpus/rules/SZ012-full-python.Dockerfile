FROM golang:1.22 AS build
RUN echo build

# expect: SZ012
FROM python:3.12
COPY --from=build /out/app /usr/local/bin/app
