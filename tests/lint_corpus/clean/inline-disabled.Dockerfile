# transship-lint disable-file=SZ005
FROM debian:12-slim
# transship-lint disable=SZ002,recommended-packages
RUN apt-get update && apt-get install -y curl
RUN apt-get update \
# transship-lint disable=SZ002
 && apt-get install -y --no-install-recommends jq
RUN pip install flask  # transship-lint disable=package-cache-kept
RUN <<EOF
# transship-lint disable=SZ009, SZ001
apt-get update && apt-get install -y --no-install-recommends gdb && rm -rf /var/lib/apt/lists/*
EOF
