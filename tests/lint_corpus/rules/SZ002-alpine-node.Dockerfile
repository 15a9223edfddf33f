# transship-lint disable-file=SZ005
FROM alpine:3.20 AS base
# expect: SZ002
RUN apk update && apk add curl
RUN apk add --no-cache jq

FROM base
WORKDIR /srv
# expect: SZ002
RUN yarn install --frozen-lockfile --production
RUN yarn install --production && yarn cache clean
# expect: SZ002
RUN dnf install -y --setopt=install_weak_deps=False httpd
RUN microdnf install -y httpd && microdnf clean all
# expect: SZ002
RUN zypper --non-interactive install tar
