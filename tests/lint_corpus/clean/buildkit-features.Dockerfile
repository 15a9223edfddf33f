# syntax=docker/dockerfile:1.7
FROM debian:12-slim AS base
COPY <<no-recommends <<no-suggests /etc/apt/apt.conf.d/
APT::Install-Recommends "false";
no-recommends
APT::Install-Suggests "false";
no-suggests

FROM base AS runtime
	# indented instructions and tab-stripped heredocs
	RUN <<-EOF
		set -e
		apt-get update
		apt-get install -y curl
		rm -rf /var/lib/apt/lists/*
		EOF
	COPY --chmod=0755 <<EOF /entrypoint.sh
#!/bin/sh
exec "$@"
EOF
RUN \
    --mount=type=cache,target=/root/.cache/pip \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    pip install -r /tmp/requirements.txt
WORKDIR /srv
RUN bash -xe <<SCRIPT
apt-get update
apt-get install -y tzdata
rm -rf /var/lib/apt/lists/*
SCRIPT
ENTRYPOINT ["/entrypoint.sh"]
