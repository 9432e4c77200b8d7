# Builds Caddy with FlagBridge built in, the usual xcaddy way:
#
#     docker build -f xcaddy.Dockerfile -t flagbridge .
#     docker run -p 443:443 -v $PWD/Caddyfile:/etc/caddy/Caddyfile -v flagbridge-data:/data flagbridge
#
# The embedded store lives in /data (the caddy image's data volume), next to
# Caddy's certificates. "go build ./cmd/caddy" produces the same binary
# without Docker.

FROM caddy:2.11-builder AS builder
WORKDIR /src
COPY . .
RUN xcaddy build v2.11.9 \
	--with github.com/flagbridge/flagbridge=./ \
	--output /usr/bin/caddy

FROM caddy:2.11
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
