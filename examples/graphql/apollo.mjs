// FlagBridge GraphQL with Apollo Client: setContext adds the Bearer header
// to every request. Needs FLAGBRIDGE_KEY (an admin key) and, for the local
// quick-start server, NODE_EXTRA_CA_CERTS pointing at Caddy's local CA.
// Install with: npm install @apollo/client@3 graphql@16. (Node.js ES modules
// need the explicit index.js paths below with Apollo Client 3; bundlers and
// the browser take "@apollo/client" as usual.)
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { setContext } from "@apollo/client/link/context/index.js";

const authLink = setContext((_, { headers }) => ({
  headers: { ...headers, authorization: `Bearer ${process.env.FLAGBRIDGE_KEY}` },
}));
const httpLink = new HttpLink({ uri: process.env.FLAGBRIDGE_URL ?? "https://localhost:8443/graphql" });
const client = new ApolloClient({ link: authLink.concat(httpLink), cache: new InMemoryCache() });

const { data: who } = await client.query({ query: gql`{ viewer { id email } }` });
console.log("viewer", who.viewer);

const { data: created } = await client.mutate({
  mutation: gql`
    mutation CreateKey($input: CreateAPIKeyInput!) {
      createAPIKey(input: $input) { id key name createdAt expiresAt }
    }`,
  variables: { input: { name: "CI/CD Pipeline", permissions: ["READ", "WRITE"], expiresIn: "30d" } },
});
console.log("created", created.createAPIKey);

const { data: revoked } = await client.mutate({
  mutation: gql`mutation Revoke($id: ID!) { revokeAPIKey(id: $id) { id revokedAt } }`,
  variables: { id: created.createAPIKey.id },
});
console.log("revoked", revoked.revokeAPIKey);
