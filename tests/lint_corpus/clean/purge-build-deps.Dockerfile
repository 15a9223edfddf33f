FROM debian:12-slim
ENV TOOL_VERSION=2.4.1
# build deps are marked automatic and purged in the same step, as the official images do
RUN set -eux; \
	saved="$(apt-mark showmanual)"; \
	apt-get update; \
	apt-get install -y --no-install-recommends gcc make libssl-dev wget ca-certificates; \
	wget -O tool.tar.gz "https://example.com/tool-$TOOL_VERSION.tar.gz"; \
	mkdir -p /usr/src/tool; \
	tar -xzf tool.tar.gz -C /usr/src/tool --strip-components=1; \
	rm tool.tar.gz; \
	make -C /usr/src/tool install; \
	rm -rf /usr/src/tool; \
	apt-mark auto '.*' > /dev/null; \
	apt-mark manual $saved; \
	apt-get purge -y --auto-remove -o APT::AutoRemove::RecommendsImportant=false; \
	rm -rf /var/lib/apt/lists/*
CMD ["tool"]
