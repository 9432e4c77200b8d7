// Package graphqlapi is FlagBridge's GraphQL API at /graphql, built with
// gqlgen from schema.graphqls (schema first; `go generate ./graphqlapi`
// regenerates generated.go and models_gen.go, which are committed). It is
// a thin layer: resolvers call the same admin services as the REST API, so
// no rule is written twice.
package graphqlapi
