// FlagBridge GraphQL with fetch (Node.js 18+ or a browser). Needs
// FLAGBRIDGE_KEY (an admin key) and, for the local quick-start server,
// NODE_EXTRA_CA_CERTS pointing at Caddy's local CA.
const url = process.env.FLAGBRIDGE_URL ?? "https://localhost:8443/graphql";

async function graphql(query, variables = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Authorization: `Bearer ${process.env.FLAGBRIDGE_KEY}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await res.json();
  if (body.errors) {
    throw new Error(`${res.status} ${body.errors[0].extensions?.code}: ${body.errors[0].message}`);
  }
  return body.data;
}

const { viewer } = await graphql("{ viewer { id email } }");
console.log("viewer", viewer);

const { createAPIKey } = await graphql(
  `mutation CreateKey($input: CreateAPIKeyInput!) {
     createAPIKey(input: $input) { id key name createdAt expiresAt }
   }`,
  { input: { name: "CI/CD Pipeline", permissions: ["READ", "WRITE"], expiresIn: "30d" } },
);
console.log("created", createAPIKey);

const { revokeAPIKey } = await graphql(
  "mutation Revoke($id: ID!) { revokeAPIKey(id: $id) { id revokedAt } }",
  { id: createAPIKey.id },
);
console.log("revoked", revokeAPIKey);
