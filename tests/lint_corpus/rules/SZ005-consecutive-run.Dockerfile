FROM alpine:3.20 AS build
RUN echo one > /one
RUN echo two > /two

FROM alpine:3.20
# expect: SZ005
RUN echo a > /a
RUN echo b > /b
RUN echo c > /c
WORKDIR /x
RUN echo single
ENV A=1
RUN echo d
# different mounts: these cannot simply be joined
RUN --mount=type=cache,target=/root/.cache echo e
# expect: SZ005
RUN <<EOF
echo f
EOF
RUN echo g \
  && echo h
