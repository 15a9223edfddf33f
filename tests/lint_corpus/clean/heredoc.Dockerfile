# syntax=docker/dockerfile:1.4
FROM debian:12-slim
RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl
rm -rf /var/lib/apt/lists/*
EOF
COPY <<-EOT /etc/app/config.ini
	[server]
	port = 8080
	EOT
# a Python script: its text is not shell, so "apt-get install" in it means nothing
RUN <<PY python3
import subprocess
print("apt-get install -y gcc")
PY
WORKDIR /srv
RUN bash <<'SCRIPT'
set -e
echo "pip install flask" > /etc/motd
SCRIPT
COPY <<A <<B /etc/app/
first
A
second
B
CMD ["/usr/local/bin/app"]
