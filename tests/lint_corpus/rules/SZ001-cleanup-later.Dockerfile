# transship-lint disable-file=SZ005
FROM python:3.12-slim AS build
# a builder stage is not shipped: its layers cost the image nothing
RUN apt-get update && apt-get install -y --no-install-recommends gcc
RUN rm -rf /var/lib/apt/lists/*

FROM python:3.12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl
# expect: SZ001
RUN rm -rf /var/lib/apt/lists/*
RUN pip install flask==3.0.0
# expect: SZ001
RUN pip cache purge
RUN <<EOF
set -e
dnf install -y --setopt=install_weak_deps=False nginx
EOF
# expect: SZ001
RUN dnf clean all
RUN npm ci --omit=dev
# expect: SZ001
RUN rm -rf /root/.npm
# nothing wrote an apk cache: nothing to report
RUN rm -rf /var/cache/apk/*
