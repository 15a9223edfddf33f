# transship-lint disable-file=SZ005
ARG TOOL_DIR=/opt/tool
FROM debian:12-slim
ARG TOOL_DIR
WORKDIR /opt/app
COPY installer.sh /tmp/installer.sh
# expect: SZ003
RUN sh /tmp/installer.sh && rm -f /tmp/installer.sh
RUN curl -fsSLo /tmp/tool.bin https://example.com/tool.bin
# expect: SZ003
RUN install -m 755 /tmp/tool.bin /usr/local/bin/tool && rm /tmp/tool.bin
RUN git clone --depth 1 https://example.com/repo/plugins.git $TOOL_DIR
# expect: SZ003
RUN make -C ${TOOL_DIR} install && rm -rf ${TOOL_DIR}
COPY settings.ini defaults.ini /tmp/
# expect: SZ003
RUN cp /tmp/settings.ini /etc/ && rm -rf /tmp/*
RUN cd /opt && wget https://example.com/data.csv
# expect: SZ003
RUN rm /opt/data.csv
# downloaded and deleted in the same step: fine
RUN curl -fsSL -o /tmp/x.sh https://example.com/x.sh && sh /tmp/x.sh && rm /tmp/x.sh
# not added by this Dockerfile (comes with the base): nothing to report here
RUN rm -rf /usr/share/doc
