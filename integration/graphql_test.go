package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/graphqlapi"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// The exact bodies the edge writes on /graphql.
const (
	gqlUnauthenticated = `{"errors":[{"message":"You must be authenticated to perform this action","extensions":{"code":"UNAUTHENTICATED"}}]}`
	gqlForbidden       = `{"errors":[{"message":"You do not have permission to perform this action","extensions":{"code":"FORBIDDEN"}}]}`
	gqlHTTPS           = `{"errors":[{"message":"All requests must use HTTPS","extensions":{"code":"HTTPS_REQUIRED"}}]}`
)

// The documents of the issue, as clients send them.
const (
	gqlViewer = `{ viewer { id email } }`
	gqlCreate = `mutation CreateKey($input: CreateAPIKeyInput!) {
  createAPIKey(input: $input) { id key name createdAt expiresAt }
}`
	gqlCreateVariables = `{"input":{"name":"CI/CD Pipeline","permissions":["READ","WRITE"],"expiresIn":"30d"}}`
	gqlRevoke          = `mutation RevokeKey($id: ID!) {
  revokeAPIKey(id: $id) { id revokedAt }
}`
)

// graphQLBody is a GraphQL request body; variables is raw JSON (or "").
func graphQLBody(query, variables string) string {
	q, _ := json.Marshal(query)
	if variables == "" {
		return `{"query":` + string(q) + `}`
	}
	return `{"query":` + string(q) + `,"variables":` + variables + `}`
}

// postGraphQL posts a GraphQL request to an instance.
func postGraphQL(t *testing.T, c *testenv.Caddy, key, query, variables string) reply {
	t.Helper()
	return call(t, c, "POST", "/graphql", key, graphQLBody(query, variables))
}

// graphQLData checks that r is a 200 without errors and decodes data.<field>.
func graphQLData(t *testing.T, r reply, field string, v any) {
	t.Helper()
	var resp struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []json.RawMessage          `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.Body), &resp); err != nil || r.Status != 200 || len(resp.Errors) > 0 {
		t.Fatalf("want data, got %d %s", r.Status, r.Body)
	}
	if err := json.Unmarshal(resp.Data[field], v); err != nil {
		t.Fatalf("data.%s: %v in %s", field, err, r.Body)
	}
}

// graphQLError returns the status and extensions.code of the first error.
func graphQLError(t *testing.T, r reply) (int, string) {
	t.Helper()
	var resp struct {
		Errors []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.Body), &resp); err != nil || len(resp.Errors) == 0 {
		t.Fatalf("want GraphQL errors, got %d %s", r.Status, r.Body)
	}
	return r.Status, resp.Errors[0].Extensions.Code
}

// graphQLWithAuth posts a GraphQL request with the given Authorization header
// values (none if empty).
func graphQLWithAuth(t *testing.T, c *testenv.Caddy, auth ...string) reply {
	t.Helper()
	req, err := http.NewRequest("POST", c.URL("/graphql"), strings.NewReader(graphQLBody(gqlViewer, "")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	return do(t, c, req)
}

// TestGraphQLClientRequestsThroughCaddy sends the documents through
// a real Caddy, and checks that GraphQL and REST are one API over the same
// keys.
func TestGraphQLClientRequestsThroughCaddy(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"web"}`), 201)

	r := postGraphQL(t, c, org, gqlViewer, "")
	var viewer struct{ ID, Email string }
	graphQLData(t, r, "viewer", &viewer)
	if !strings.HasPrefix(viewer.ID, "mem_") || viewer.Email != "owner@example.com" {
		t.Fatalf("viewer: %s", r.Body)
	}
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Cache-Control") != "no-store" ||
		r.Header.Get("X-RateLimit-Limit") == "" || r.Header.Get("X-RateLimit-Remaining") == "" {
		t.Fatalf("viewer headers: %v", r.Header)
	}

	r = postGraphQL(t, c, org, gqlCreate, gqlCreateVariables)
	var created struct {
		ID, Key, Name        string
		CreatedAt, ExpiresAt time.Time
	}
	graphQLData(t, r, "createAPIKey", &created)
	if created.Name != "CI/CD Pipeline" || !keyPattern.MatchString(created.Key) || !strings.HasPrefix(created.Key, "fb_admin_") ||
		!created.ExpiresAt.Equal(created.CreatedAt.Add(30*24*time.Hour)) {
		t.Fatalf("created: %s", r.Body)
	}
	// The same key on REST: it works there, and REST shows it.
	mustStatus(t, call(t, c, "GET", "/v1/projects", created.Key, ""), 200)
	rest := mustStatus(t, call(t, c, "GET", "/v1/api-keys/"+created.ID, org, ""), 200).JSON(t)
	if rest["name"] != "CI/CD Pipeline" || rest["project"] != nil || strings.Contains(fmt.Sprint(rest), created.Key) {
		t.Fatalf("REST shows the key as %v", rest)
	}
	// A key made on REST is one GraphQL lists, and vice versa.
	restID, restKey := createKey(t, c, org, "web", `{"name":"from rest","type":"admin"}`)
	var keys []struct{ ID, Name string }
	graphQLData(t, postGraphQL(t, c, created.Key, `{ apiKeys { id name } }`, ""), "apiKeys", &keys)
	seen := map[string]string{}
	for _, k := range keys {
		seen[k.ID] = k.Name
	}
	if seen[restID] != "from rest" || seen[created.ID] != "CI/CD Pipeline" {
		t.Fatalf("GraphQL lists %v", keys)
	}

	// Revoked over GraphQL: refused on both APIs at once.
	r = postGraphQL(t, c, org, gqlRevoke, `{"id":"`+created.ID+`"}`)
	var revoked struct {
		ID        string
		RevokedAt time.Time
	}
	graphQLData(t, r, "revokeAPIKey", &revoked)
	if revoked.ID != created.ID || revoked.RevokedAt.IsZero() {
		t.Fatalf("revoked: %s", r.Body)
	}
	if res := call(t, c, "GET", "/v1/projects", created.Key, ""); res.Status != 401 || res.Body != bodyInvalid {
		t.Fatalf("REST with the revoked key: %d %s", res.Status, res.Body)
	}
	if res := postGraphQL(t, c, created.Key, gqlViewer, ""); res.Status != 401 || res.Body != gqlUnauthenticated {
		t.Fatalf("GraphQL with the revoked key: %d %s", res.Status, res.Body)
	}
	// Revoked over REST: refused on GraphQL.
	mustStatus(t, call(t, c, "DELETE", "/v1/api-keys/"+restID, org, ""), 200)
	if res := postGraphQL(t, c, restKey, gqlViewer, ""); res.Status != 401 || res.Body != gqlUnauthenticated {
		t.Fatalf("GraphQL with a key revoked on REST: %d %s", res.Status, res.Body)
	}
}

// TestGraphQLRequestHandlingThroughCaddy: content types, size, validation
// and limits as clients meet them behind Caddy.
func TestGraphQLRequestHandlingThroughCaddy(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c)
	post := func(body, contentType string) reply {
		req, err := http.NewRequest("POST", c.URL("/graphql"), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+org)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		return do(t, c, req)
	}
	// curl -d: a JSON body sent as a form.
	var created struct{ ID, Key string }
	graphQLData(t, post(graphQLBody(gqlCreate, gqlCreateVariables), "application/x-www-form-urlencoded"), "createAPIKey", &created)
	var viewer struct{ ID string }
	graphQLData(t, post(graphQLBody(gqlViewer, ""), ""), "viewer", &viewer)

	// Request size.
	q := graphQLBody(gqlViewer, "")
	pad := func(n int) string { return q + strings.Repeat(" ", n-len(q)) }
	graphQLData(t, post(pad(graphqlapi.MaxRequestBytes), "application/json"), "viewer", &viewer)
	r := post(pad(graphqlapi.MaxRequestBytes+1), "application/json")
	if r.Status != 400 || r.Body != `{"errors":[{"message":"request body is larger than 65536 bytes","extensions":{"code":"BAD_USER_INPUT"}}]}` {
		t.Fatalf("oversized: %d %s", r.Status, r.Body)
	}
	r = post(`query { viewer { id } }`, "application/x-www-form-urlencoded")
	if st, code := graphQLError(t, r); st != 400 || code != "BAD_USER_INPUT" {
		t.Fatalf("not JSON: %d %s", r.Status, r.Body)
	}

	// Invalid documents: GraphQL's standard errors, 422.
	for doc, want := range map[string]string{
		`{ viewer { nope } }`:                    "GRAPHQL_VALIDATION_FAILED",
		`{ viewer { id `:                         "GRAPHQL_PARSE_FAILED",
		`mutation { revokeAPIKey { id } }`:       "GRAPHQL_VALIDATION_FAILED",
		`{ apiKeys(project: "web") { secret } }`: "GRAPHQL_VALIDATION_FAILED",
	} {
		if st, code := graphQLError(t, postGraphQL(t, c, org, doc, "")); st != 422 || code != want {
			t.Errorf("%s: %d %s, want 422 %s", doc, st, code, want)
		}
	}
	// Bounded depth and complexity; introspection still works.
	deep := `{ __schema { types { fields { type { ` + strings.Repeat("ofType { ", graphqlapi.MaxDepth-4) + "name" +
		strings.Repeat(" }", graphqlapi.MaxDepth-4) + ` } } } } }`
	if st, code := graphQLError(t, postGraphQL(t, c, org, deep, "")); st != 422 || code != "QUERY_TOO_DEEP" {
		t.Fatalf("too deep: %d %s", st, code)
	}
	var wide strings.Builder
	for i := 0; i <= graphqlapi.MaxComplexity/2; i++ {
		fmt.Fprintf(&wide, " v%d: viewer { id }", i)
	}
	if st, code := graphQLError(t, postGraphQL(t, c, org, "{"+wide.String()+" }", "")); st != 422 || code != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Fatalf("too complex: %d %s", st, code)
	}
	var schema struct {
		QueryType, MutationType struct{ Name string }
		Types                   []struct{ Name string }
	}
	graphQLData(t, postGraphQL(t, c, org, `{ __schema { queryType { name } mutationType { name } types { name fields(includeDeprecated: true) { name args { name type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }`, ""), "__schema", &schema)
	if schema.QueryType.Name != "Query" || schema.MutationType.Name != "Mutation" || len(schema.Types) < 20 {
		t.Fatalf("introspection: %+v", schema)
	}
}

// TestGraphQLUnauthenticatedAtTheEdge: the edge refuses missing, malformed,
// unknown, expired and revoked keys on /graphql with GraphQL's 401.
func TestGraphQLUnauthenticatedAtTheEdge(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	c := redisCaddy(t, r, "\t\trate_limit unauthenticated 1000/1m")
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"web"}`), 201)

	// An expired key: made by the admin service over the same Redis, with
	// its clock two minutes back, to live one minute.
	st, err := store.OpenRedis(r.URL(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := admin.New(st)
	svc.SetClock(func() time.Time { return time.Now().Add(-2 * time.Minute) })
	root, err := svc.Keys.LookupKey(context.Background(), apikey.DigestOf(org))
	if err != nil || root == nil {
		t.Fatalf("looking up the bootstrap key: %v", err)
	}
	expired, err := svc.Keys.CreateKey(context.Background(), authz.ForKey(root), "web", keys.CreateInput{Name: "expired", Type: "admin", ExpiresIn: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	var revoked struct{ ID, Key string }
	graphQLData(t, postGraphQL(t, c, org, `mutation { createAPIKey(input: {name: "r", permissions: [READ, WRITE]}) { id key } }`, ""), "createAPIKey", &revoked)
	if graphQLWithAuth(t, c, "Bearer "+revoked.Key).Status != 200 {
		t.Fatal("the key to revoke does not work")
	}
	mustStatus(t, postGraphQL(t, c, org, gqlRevoke, `{"id":"`+revoked.ID+`"}`), 200)

	unknown, err := apikey.Generate(apikey.Admin)
	if err != nil {
		t.Fatal(err)
	}
	// The last character is part of the checksum.
	tampered := org[:len(org)-1] + "A"
	if strings.HasSuffix(org, "A") {
		tampered = org[:len(org)-1] + "B"
	}
	for name, auth := range map[string][]string{
		"no header":              nil,
		"empty header":           {""},
		"scheme only":            {"Bearer"},
		"scheme and space":       {"Bearer "},
		"two spaces":             {"Bearer  " + org},
		"trailing space":         {"Bearer " + org + " "},
		"tab":                    {"Bearer\t" + org},
		"other scheme":           {"Basic " + org},
		"no scheme":              {org},
		"other characters":       {"Bearer " + org + "!"},
		"comma":                  {"Bearer " + org + "," + org},
		"quoted":                 {`Bearer "` + org + `"`},
		"two headers":            {"Bearer " + org, "Bearer " + org},
		"not a key":              {"Bearer hunter2"},
		"truncated":              {"Bearer " + org[:len(org)-1]},
		"bad checksum":           {"Bearer " + tampered},
		"unknown key":            {"Bearer " + unknown},
		"expired key":            {"Bearer " + expired.Secret},
		"revoked key":            {"Bearer " + revoked.Key},
		"revoked key, lowercase": {"bearer " + revoked.Key},
	} {
		res := graphQLWithAuth(t, c, auth...)
		if res.Status != 401 || res.Body != gqlUnauthenticated {
			t.Errorf("%s: %d %s", name, res.Status, res.Body)
			continue
		}
		if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("WWW-Authenticate") != `Bearer realm="flagbridge"` ||
			res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", name, res.Header)
		}
	}
	// Mutations alike, and nothing happens.
	res := postGraphQL(t, c, expired.Secret, gqlRevoke, `{"id":"`+root.ID+`"}`)
	if res.Status != 401 || res.Body != gqlUnauthenticated {
		t.Fatalf("mutation with an expired key: %d %s", res.Status, res.Body)
	}
	if graphQLWithAuth(t, c, "bearer "+org).Status != 200 {
		t.Fatal("the bootstrap key (scheme in lower case) stopped working")
	}
}

// TestGraphQLEdgeRefusesOtherKeys: live and test keys, and admin keys
// without READ, get GraphQL's 403 from the edge; read-only admin keys get
// it from the resolvers for mutations.
func TestGraphQLEdgeRefusesOtherKeys(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{}).Start()
	org := bootstrap(t, c)
	mustStatus(t, call(t, c, "POST", "/v1/projects", org, `{"slug":"web"}`), 201)
	_, live := createKey(t, c, org, "web", `{"name":"l","type":"live","environment":"production"}`)
	_, test := createKey(t, c, org, "web", `{"name":"t","type":"test","environment":"production"}`)
	_, writeOnly := createKey(t, c, org, "web", `{"name":"w","type":"admin","permissions":["WRITE"]}`)
	roID, readOnly := createKey(t, c, org, "web", `{"name":"r","type":"admin","permissions":["READ"]}`)

	for name, key := range map[string]string{"live": live, "test": test, "admin without READ": writeOnly} {
		for _, doc := range []string{gqlViewer, gqlCreate} {
			res := postGraphQL(t, c, key, doc, gqlCreateVariables)
			if res.Status != 403 || res.Body != gqlForbidden || res.Header.Get("X-RateLimit-Limit") == "" {
				t.Errorf("%s key: %d %v %s", name, res.Status, res.Header, res.Body)
			}
		}
	}
	// REST keeps its own shape for the same refusal.
	if res := call(t, c, "GET", "/v1/projects", live, ""); res.Status != 403 || res.Body != bodyWrongKey {
		t.Fatalf("REST with a live key: %d %s", res.Status, res.Body)
	}
	// Read-only: queries answer, mutations are refused, whole.
	var v struct{ Email string }
	graphQLData(t, postGraphQL(t, c, readOnly, gqlViewer, ""), "viewer", &v)
	for _, doc := range []struct{ query, vars string }{
		{gqlCreate, gqlCreateVariables},
		{gqlRevoke, `{"id":"` + roID + `"}`},
		{`mutation { rotateAPIKey(id: "` + roID + `") { key } }`, ""},
	} {
		res := postGraphQL(t, c, readOnly, doc.query, doc.vars)
		if st, code := graphQLError(t, res); st != 403 || code != "FORBIDDEN" || strings.Contains(res.Body, `"key":`) || strings.Contains(res.Body, `"revokedAt":`) {
			t.Errorf("read-only mutation: %d %s", res.Status, res.Body)
		}
	}
	if graphQLWithAuth(t, c, "Bearer "+readOnly).Status != 200 {
		t.Fatal("the read-only key was revoked or rotated")
	}
	// Plain HTTP: refused before the key is looked at, in GraphQL's shape.
	res := send(t, c.Client(), "POST", c.PlainURL("/graphql"), org, graphQLBody(gqlViewer, ""))
	if res.Status != 403 || res.Body != gqlHTTPS {
		t.Fatalf("plain HTTP: %d %s", res.Status, res.Body)
	}
}

// TestGraphQLRateLimit: GraphQL and REST share a key's bucket and its
// headers; past the limit GraphQL gets a 429 in its own shape.
func TestGraphQLRateLimit(t *testing.T) {
	t.Parallel()
	c := testenv.NewCaddy(t, testenv.CaddyOptions{Global: "\tflagbridge {\n\t\trate_limit admin 5/1h\n\t}"}).Start()
	org := bootstrap(t, c)

	var made struct{ ID, Key string }
	steps := []struct {
		name   string
		do     func() reply
		status int
	}{
		{"GraphQL query", func() reply { return postGraphQL(t, c, org, gqlViewer, "") }, 200},
		{"REST list", func() reply { return call(t, c, "GET", "/v1/projects", org, "") }, 200},
		{"GraphQL invalid", func() reply { return postGraphQL(t, c, org, `{ nope }`, "") }, 422},
		{"GraphQL mutation", func() reply {
			r := postGraphQL(t, c, org, `mutation { createAPIKey(input: {name: "ro", permissions: [READ]}) { id key } }`, "")
			graphQLData(t, r, "createAPIKey", &made)
			return r
		}, 200},
		{"REST 404", func() reply { return call(t, c, "GET", "/v1/projects/nope", org, "") }, 404},
	}
	for i, s := range steps {
		res := s.do()
		if res.Status != s.status {
			t.Fatalf("%s: %d %s", s.name, res.Status, res.Body)
		}
		reset, _ := strconv.ParseInt(res.Header.Get("X-RateLimit-Reset"), 10, 64)
		if res.Header.Get("X-RateLimit-Limit") != "5" || res.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(4-i) ||
			reset < time.Now().Unix() {
			t.Fatalf("%s: rate-limit headers %v", s.name, res.Header)
		}
	}
	for _, doc := range []string{gqlViewer, gqlRevoke} {
		res := postGraphQL(t, c, org, doc, `{"id":"`+made.ID+`"}`)
		retry, err := strconv.Atoi(res.Header.Get("Retry-After"))
		want := fmt.Sprintf(`{"errors":[{"message":"Rate limit exceeded; retry in %d seconds","extensions":{"code":"RATE_LIMITED"}}]}`, retry)
		if res.Status != 429 || err != nil || retry <= 0 || res.Body != want ||
			res.Header.Get("X-RateLimit-Limit") != "5" || res.Header.Get("X-RateLimit-Remaining") != "0" {
			t.Fatalf("past the limit: %d %v %s", res.Status, res.Header, res.Body)
		}
	}
	if res := call(t, c, "GET", "/v1/projects", org, ""); res.Status != 429 || !strings.HasPrefix(res.Body, `{"error":"RATE_LIMITED"`) {
		t.Fatalf("REST past the limit: %d %s", res.Status, res.Body)
	}
	// The refused revocation did not happen; the new key has a bucket of
	// its own, and its refusals carry it too.
	res := postGraphQL(t, c, made.Key, `mutation { revokeAPIKey(id: "`+made.ID+`") { id } }`, "")
	if st, code := graphQLError(t, res); st != 403 || code != "FORBIDDEN" || res.Header.Get("X-RateLimit-Remaining") != "4" {
		t.Fatalf("read-only key: %d %v %s", res.Status, res.Header, res.Body)
	}
	if graphQLWithAuth(t, c, "Bearer "+made.Key).Status != 200 {
		t.Fatal("the key was revoked past the limit")
	}
}

// TestGraphQLRevocationAcrossInstances: two instances on one Redis; a key
// revoked through either API on one stops on the other, through either
// API, within a second.
func TestGraphQLRevocationAcrossInstances(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	a := redisCaddy(t, r, "")
	b := redisCaddy(t, r, "")
	org := bootstrap(t, a)
	mustStatus(t, call(t, a, "POST", "/v1/projects", org, `{"slug":"app"}`), 201)

	restWorks := func(c *testenv.Caddy, key string) bool {
		res := call(t, c, "GET", "/v1/projects", key, "")
		if res.Status != 200 && (res.Status != 401 || res.Body != bodyInvalid) {
			t.Fatalf("REST: %d %s", res.Status, res.Body)
		}
		return res.Status == 200
	}
	gqlWorks := func(c *testenv.Caddy, key string) bool {
		res := postGraphQL(t, c, key, gqlViewer, "")
		if res.Status != 200 && (res.Status != 401 || res.Body != gqlUnauthenticated) {
			t.Fatalf("GraphQL: %d %s", res.Status, res.Body)
		}
		return res.Status == 200
	}

	// Revoked over GraphQL on A: REST on B stops.
	var k struct{ ID, Key string }
	graphQLData(t, postGraphQL(t, a, org, `mutation { createAPIKey(input: {name: "k", permissions: [READ, WRITE], project: "app"}) { id key } }`, ""), "createAPIKey", &k)
	if !restWorks(b, k.Key) || !gqlWorks(b, k.Key) {
		t.Fatal("a key made over GraphQL on A does not work on B")
	}
	mustStatus(t, postGraphQL(t, a, org, gqlRevoke, `{"id":"`+k.ID+`"}`), 200)
	took := eventually(t, time.Second, "GraphQL revocation on A reaching REST on B", func() bool { return !restWorks(b, k.Key) })
	t.Logf("GraphQL revocation seen by REST on B after %v", took)
	if gqlWorks(b, k.Key) || gqlWorks(a, k.Key) || restWorks(a, k.Key) {
		t.Fatal("the revoked key still works somewhere")
	}

	// Revoked over REST on A: GraphQL on B stops.
	id, key := createKey(t, a, org, "app", `{"name":"r","type":"admin"}`)
	if !gqlWorks(b, key) || !restWorks(b, key) {
		t.Fatal("a key made over REST on A does not work over GraphQL on B")
	}
	mustStatus(t, call(t, a, "DELETE", "/v1/api-keys/"+id, org, ""), 200)
	took = eventually(t, time.Second, "REST revocation on A reaching GraphQL on B", func() bool { return !gqlWorks(b, key) })
	t.Logf("REST revocation seen by GraphQL on B after %v", took)
	if restWorks(b, key) {
		t.Fatal("the revoked key still works on REST on B")
	}

	// Rotated over GraphQL on A: the old secret stops on B, the new one
	// works there.
	graphQLData(t, postGraphQL(t, a, org, `mutation { createAPIKey(input: {name: "rot", permissions: [READ], project: "app"}) { id key } }`, ""), "createAPIKey", &k)
	if !gqlWorks(b, k.Key) {
		t.Fatal("new key on B")
	}
	var rotated struct{ ID, Key string }
	graphQLData(t, postGraphQL(t, a, org, `mutation { rotateAPIKey(id: "`+k.ID+`") { id key } }`, ""), "rotateAPIKey", &rotated)
	if rotated.ID != k.ID || rotated.Key == k.Key {
		t.Fatalf("rotated: %+v", rotated)
	}
	eventually(t, time.Second, "GraphQL rotation on A reaching B", func() bool { return !restWorks(b, k.Key) })
	if !gqlWorks(b, rotated.Key) || !restWorks(b, rotated.Key) {
		t.Fatal("the rotated secret does not work on B")
	}
}
