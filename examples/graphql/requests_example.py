"""FlagBridge GraphQL with Python requests. Needs FLAGBRIDGE_KEY (an admin
key) and, for the local quick-start server, REQUESTS_CA_BUNDLE pointing at
Caddy's local CA."""
import os

import requests

URL = os.environ.get("FLAGBRIDGE_URL", "https://localhost:8443/graphql")
session = requests.Session()
session.headers["Authorization"] = "Bearer " + os.environ["FLAGBRIDGE_KEY"]


def graphql(query, variables=None):
    res = session.post(URL, json={"query": query, "variables": variables or {}}, timeout=10)
    body = res.json()
    if "errors" in body:
        error = body["errors"][0]
        raise RuntimeError(f"{res.status_code} {error['extensions']['code']}: {error['message']}")
    return body["data"]


print("viewer", graphql("{ viewer { id email } }")["viewer"])

created = graphql(
    """mutation CreateKey($input: CreateAPIKeyInput!) {
         createAPIKey(input: $input) { id key name createdAt expiresAt }
       }""",
    {"input": {"name": "CI/CD Pipeline", "permissions": ["READ", "WRITE"], "expiresIn": "30d"}},
)["createAPIKey"]
print("created", created)

revoked = graphql(
    "mutation Revoke($id: ID!) { revokeAPIKey(id: $id) { id revokedAt } }",
    {"id": created["id"]},
)["revokeAPIKey"]
print("revoked", revoked)
