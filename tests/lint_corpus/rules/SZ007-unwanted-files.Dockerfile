FROM node:20-slim AS build
WORKDIR /app
RUN echo build > /app/out.txt

FROM node:20-slim
WORKDIR /app
# expect: SZ007
COPY .git /app/.git
# expect: SZ007
COPY .env /app/
# expect: SZ007
COPY node_modules/ /app/node_modules/
# expect: SZ007, SZ007
COPY debug.log notes.bak /app/
# expect: SZ007
COPY target /app/target
# expect: SZ007
COPY src/__pycache__ /app/src/__pycache__
COPY target/app.jar /app/app.jar
COPY .npmrc package.json /app/
COPY dist/ /usr/share/nginx/html/
COPY --from=build /app/node_modules ./node_modules
