# expect: SZ012
FROM maven:3-eclipse-temurin-21 AS build
WORKDIR /src
RUN echo build

FROM build
RUN echo package
