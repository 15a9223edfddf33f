# transship-lint disable-file=SZ005
FROM debian:12-slim
WORKDIR /opt
# expect: SZ008
COPY app.tar.gz /opt/
# expect: SZ003
RUN tar -xzf app.tar.gz && rm app.tar.gz
# ADD unpacks a local tar itself: nothing stays packed
ADD vendor.tar.xz /opt/vendor/
# expect: SZ008
ADD https://example.com/dist.zip /tmp/dist.zip
# expect: SZ008
COPY data.zip /data/
# expect: SZ008
COPY pkgs/tool.deb /tmp/
# expect: SZ003
RUN dpkg -i /tmp/tool.deb && rm /tmp/tool.deb
COPY app.jar /opt/app.jar
