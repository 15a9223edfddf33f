# escape=`
FROM alpine:3.20
RUN apk add --no-cache `
        curl `
        jq `
 && echo "C:\path\kept as is" > /note
COPY ["conf/app.conf", "/etc/app/app.conf"]
