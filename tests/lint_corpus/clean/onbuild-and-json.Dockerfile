FROM alpine:3.20
ONBUILD RUN apk update && apk add gcc
ENV APP_HOME=/srv/app GREETING="hello world"
WORKDIR $APP_HOME
RUN ["/bin/sh", "-c", "apk add --no-cache tini"]
HEALTHCHECK --interval=30s CMD ["wget", "-q", "-O", "-", "http://localhost:8080/health"]
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
STOPSIGNAL SIGTERM
LABEL org.opencontainers.image.title="demo" maintainer="team@example.com"
VOLUME /data
EXPOSE 8080/tcp 8443
USER 1000:1000
ENTRYPOINT ["/sbin/tini", "--"]
CMD ["/srv/app/run"]
