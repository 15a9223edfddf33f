# transship-lint disable-file=SZ005
FROM debian:12-slim
RUN useradd --create-home app
COPY app/ /srv/app/
# expect: SZ004
RUN chown -R app:app /srv/app
COPY --chown=app:app conf/ /srv/conf/
# only the directory entry changes: cheap
RUN chown app /srv/conf
RUN curl -fsSLo /usr/local/bin/tool https://example.com/tool
# expect: SZ004
RUN chmod +x /usr/local/bin/tool
COPY settings.json /tmp/settings.json
# expect: SZ004
RUN mv /tmp/settings.json /srv/settings.json
# not added by this Dockerfile
RUN chmod 600 /etc/shadow
