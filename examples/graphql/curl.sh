#!/bin/sh
# FlagBridge GraphQL with cURL. Needs FLAGBRIDGE_KEY (an admin key) and, for
# the local quick-start server, CURL_CA_BUNDLE pointing at Caddy's local CA.
set -eu
URL=${FLAGBRIDGE_URL:-https://localhost:8443/graphql}

# Who am I?
curl -sS "$URL" -H "Authorization: Bearer $FLAGBRIDGE_KEY" -H 'Content-Type: application/json' \
  -d '{"query":"{ viewer { id email } }"}'
echo

# A key for a CI/CD pipeline, valid 30 days. Its "key" is shown only here.
created=$(curl -sS "$URL" -H "Authorization: Bearer $FLAGBRIDGE_KEY" -H 'Content-Type: application/json' \
  -d '{"query":"mutation CreateKey($input: CreateAPIKeyInput!) { createAPIKey(input: $input) { id key name createdAt expiresAt } }",
       "variables":{"input":{"name":"CI/CD Pipeline","permissions":["READ","WRITE"],"expiresIn":"30d"}}}')
echo "$created"
id=$(echo "$created" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')

# Revoke it when rotating.
curl -sS "$URL" -H "Authorization: Bearer $FLAGBRIDGE_KEY" -H 'Content-Type: application/json' \
  -d '{"query":"mutation Revoke($id: ID!) { revokeAPIKey(id: $id) { id revokedAt } }","variables":{"id":"'"$id"'"}}'
echo
