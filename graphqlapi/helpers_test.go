package graphqlapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/apierror"
	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/authz"
	"github.com/flagbridge/flagbridge/graphqlapi"
	"github.com/flagbridge/flagbridge/internal/testchain"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// world is FlagBridge's request path (internal/testchain: the edge guard
// in front of the router, as Caddy runs them) over one real store, with
// GraphQL behind it. Every response passes through checks that hold of all
// of them (see send).
type world struct {
	svc   *admin.Service
	st    store.Store
	chain *testchain.Chain
	// direct is a GraphQL handler over the same services that requests
	// reach without the edge, for what the edge would refuse before
	// GraphQL sees it (a key without READ, live and test keys): the
	// resolvers must refuse it too.
	direct *graphqlapi.Handler

	// offset shifts the services' clock (not the edge's), to make keys
	// that have expired already.
	offset atomic.Int64

	mu sync.Mutex
	// secrets are every key issued so far; none may appear in a response
	// after the one that issued it, nor may its digest, ever.
	secrets map[string]bool
}

// forEachStore runs fn on the file backend and on the Redis backend (a
// fresh redis-server, with a unique key prefix), in parallel.
func forEachStore(t *testing.T, fn func(t *testing.T, w *world)) {
	t.Helper()
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		st, err := store.OpenFile(t.TempDir(), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, newWorld(t, st, testchain.Options{}))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		r := testenv.StartRedis(t)
		st, err := store.OpenRedis(r.URL(), store.Options{KeyPrefix: testenv.UniquePrefix(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, newWorld(t, st, testchain.Options{}))
	})
}

// fileWorld is a world on the file backend only, for tests about the
// GraphQL layer itself rather than about storage.
func fileWorld(t *testing.T) *world {
	t.Helper()
	return fileWorldWith(t, testchain.Options{})
}

// fileWorldWith is fileWorld with the chain's options (its limits).
func fileWorldWith(t *testing.T, opts testchain.Options) *world {
	t.Helper()
	st, err := store.OpenFile(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newWorld(t, st, opts)
}

func newWorld(t *testing.T, st store.Store, opts testchain.Options) *world {
	t.Helper()
	c := testchain.New(st, opts)
	t.Cleanup(c.Close)
	w := &world{svc: c.Admin, st: st, chain: c, direct: graphqlapi.NewHandler(c.Admin, c.Guard, nil), secrets: map[string]bool{}}
	w.svc.SetClock(func() time.Time { return time.Now().Add(time.Duration(w.offset.Load())) })
	return w
}

// serve sends one request through the chain, over HTTPS from 192.0.2.1.
func (w *world) serve(r *http.Request) *httptest.ResponseRecorder {
	r.RemoteAddr = "192.0.2.1:49152"
	rec := httptest.NewRecorder()
	w.chain.ServeHTTP(rec, r)
	return rec
}

// serveDirect hands one request to the GraphQL handler as the principal of
// the key it presents, without the edge: the record whose current (or
// grace-period) secret it is, if neither revoked nor expired; nil
// otherwise, which Serve must refuse. No meter: nothing is charged.
func (w *world) serveDirect(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	w.direct.Serve(rec, r, w.authenticate(r), nil)
	return rec
}

// authenticate is the edge's decision in miniature, for serveDirect.
func (w *world) authenticate(r *http.Request) *authz.Principal {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil
	}
	digest := apikey.DigestOf(token)
	rec, err := w.svc.Keys.LookupKey(r.Context(), digest)
	if err != nil || rec == nil {
		return nil
	}
	if _, ok := rec.ValidUntil(digest.String(), time.Now()); !ok {
		return nil
	}
	return authz.ForKey(rec)
}

// issued records secrets issued outside GraphQL (bootstrap, the service).
func (w *world) issued(secrets ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range secrets {
		w.secrets[s] = true
	}
}

// org is an organization with its first owner and org-wide admin key.
type org struct {
	id, name string
	owner    identity.Member
	root     *apikey.Record
	// rootP is the root key's principal.
	rootP   *authz.Principal
	rootKey string
}

// newOrg bootstraps an organization (another one if there is one already)
// with the given projects.
func (w *world) newOrg(t *testing.T, name, ownerEmail, ownerName string, projects ...string) *org {
	t.Helper()
	ctx := context.Background()
	res, err := w.svc.Bootstrap(ctx, admin.BootstrapInput{
		NewOrg: true, OrgName: name, OwnerEmail: ownerEmail, OwnerName: ownerName,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.issued(res.Key)
	o := &org{id: res.Organization.ID, name: res.Organization.Name, owner: res.Owner, root: res.Record, rootP: res.Principal, rootKey: res.Key}
	for _, p := range projects {
		if _, _, err := w.svc.Tenancy.CreateProject(ctx, o.rootP, tenancy.CreateProjectInput{Slug: p, Name: "Project " + p}); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// mint creates a key through the service (not GraphQL) and returns its
// secret and record.
func (w *world) mint(t *testing.T, callerKey string, project string, in keys.CreateInput) (string, *apikey.Record) {
	t.Helper()
	caller := w.record(t, callerKey)
	if in.Name == "" {
		in.Name = "minted"
	}
	if in.Type == "" {
		in.Type = "admin"
	}
	k, err := w.svc.Keys.CreateKey(context.Background(), authz.ForKey(caller), project, in)
	if err != nil {
		t.Fatalf("CreateKey(%q, %+v): %v", project, in, err)
	}
	w.issued(k.Secret)
	return k.Secret, k.Record
}

// mintAt is mint with the service's clock shifted by shift.
func (w *world) mintAt(t *testing.T, shift time.Duration, callerKey, project string, in keys.CreateInput) (string, *apikey.Record) {
	t.Helper()
	w.offset.Store(int64(shift))
	defer w.offset.Store(0)
	return w.mint(t, callerKey, project, in)
}

// addMember adds a member to the organization through the identity
// service (the admin services add members only through invitations, which
// are not what these tests are about), a second after the organization's
// owner so that members list in a known order.
func (w *world) addMember(t *testing.T, o *org, email, name string, role authz.Role) identity.Member {
	t.Helper()
	w.offset.Store(int64(time.Second))
	defer w.offset.Store(0)
	var m *identity.Member
	err := w.st.Update(context.Background(), func(tx store.Writer) error {
		var err error
		m, err = w.svc.Identity.AddMember(tx, o.id, email, name, role)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return *m
}

// keyFor mints an organization-wide admin key owned by the member with the
// given address, as "caddy flagbridge bootstrap --new-key --email" does.
func (w *world) keyFor(t *testing.T, o *org, email string) (string, *apikey.Record) {
	t.Helper()
	res, err := w.svc.Bootstrap(context.Background(), admin.BootstrapInput{NewKey: true, OrgID: o.id, OwnerEmail: email, KeyName: "for " + email})
	if err != nil {
		t.Fatal(err)
	}
	w.issued(res.Key)
	return res.Key, res.Record
}

// record is the stored record a secret authenticates as (failing the test
// if none).
func (w *world) record(t *testing.T, secret string) *apikey.Record {
	t.Helper()
	rec, err := w.svc.Keys.LookupKey(context.Background(), apikey.DigestOf(secret))
	if err != nil {
		t.Fatal(err)
	}
	if rec == nil {
		t.Fatalf("no key record for %s", apikey.Hint(secret))
	}
	return rec
}

// keyState is the stored state of one organization's keys: its key records
// and the digest index entries pointing at them, as raw documents.
func (w *world) keyState(t *testing.T, orgID string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := w.st.View(context.Background(), func(r store.Reader) error {
		keys, err := r.List("keys/" + orgID)
		if err != nil {
			return err
		}
		for _, it := range keys {
			out["keys/"+it.ID] = string(it.Value)
		}
		digests, err := r.List("key-digests")
		if err != nil {
			return err
		}
		for _, it := range digests {
			if bytes.Contains(it.Value, []byte(`"`+orgID+`"`)) {
				out["key-digests/"+it.ID] = string(it.Value)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gqlError is one entry of a GraphQL response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// result is one GraphQL exchange.
type result struct {
	Status int
	Header http.Header
	Body   string
	// Data is the decoded data member; nil when it is null or absent.
	Data   map[string]json.RawMessage
	Errors []gqlError
}

// field decodes data.<name> into v, failing the test if it is missing.
func (r result) field(t *testing.T, name string, v any) {
	t.Helper()
	raw, ok := r.Data[name]
	if !ok {
		t.Fatalf("no data.%s in %d %s", name, r.Status, r.Body)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("data.%s: %v in %s", name, err, r.Body)
	}
}

// ok fails the test unless r is a 200 with data and no errors.
func (r result) ok(t *testing.T) result {
	t.Helper()
	if r.Status != http.StatusOK || len(r.Errors) > 0 || r.Data == nil {
		t.Fatalf("want 200 with data and no errors, got %d %s", r.Status, r.Body)
	}
	return r
}

// refused fails the test unless the whole operation was refused: the given
// status, no data, and errors all carrying code (and for FORBIDDEN and
// UNAUTHENTICATED, GraphQL's standard words).
func (r result) refused(t *testing.T, status int, code string) result {
	t.Helper()
	if r.Status != status || r.Data != nil || len(r.Errors) == 0 {
		t.Fatalf("want %d with no data and %s errors, got %d %s", status, code, r.Status, r.Body)
	}
	for _, e := range r.Errors {
		if e.code() != code {
			t.Fatalf("want every error %s, got %s", code, r.Body)
		}
		switch code {
		case "FORBIDDEN":
			if e.Message != apierror.GraphQLForbidden {
				t.Fatalf("FORBIDDEN message %q, want %q", e.Message, apierror.GraphQLForbidden)
			}
		case "UNAUTHENTICATED":
			if e.Message != apierror.GraphQLUnauthenticated {
				t.Fatalf("UNAUTHENTICATED message %q, want %q", e.Message, apierror.GraphQLUnauthenticated)
			}
		}
	}
	return r
}

// forbidden is refused(403, FORBIDDEN).
func (r result) forbidden(t *testing.T) result {
	t.Helper()
	return r.refused(t, http.StatusForbidden, "FORBIDDEN")
}

// badInput is an input error: 200, no data, BAD_USER_INPUT errors whose
// message holds every one of parts.
func (r result) badInput(t *testing.T, parts ...string) result {
	t.Helper()
	r.refused(t, http.StatusOK, "BAD_USER_INPUT")
	for _, p := range parts {
		if !strings.Contains(r.Errors[0].Message, p) {
			t.Fatalf("BAD_USER_INPUT message %q does not mention %q", r.Errors[0].Message, p)
		}
	}
	return r
}

// request is one GraphQL request as a client sends it.
type request struct {
	query     string
	variables map[string]any
	// contentType overrides application/json ("-" sends none).
	contentType string
	// body, if set, is sent as it is instead of query and variables.
	body string
}

// gql posts a query as key through the chain and checks the response.
func (w *world) gql(t *testing.T, key, query string, vars map[string]any) result {
	t.Helper()
	return w.send(t, key, request{query: query, variables: vars})
}

// gqlDirect is gql without the edge (see world.direct).
func (w *world) gqlDirect(t *testing.T, key, query string, vars map[string]any) result {
	t.Helper()
	return w.sendVia(t, key, request{query: query, variables: vars}, w.serveDirect)
}

var fullKey = regexp.MustCompile(apikey.SecretPattern)

// send sends one request through the chain and checks what must hold of
// every response: uncacheable JSON in GraphQL's shape (data and/or errors,
// every error with a message and an extensions.code), and no secret or
// digest except a new secret in the answer of the mutation that issues it.
func (w *world) send(t *testing.T, key string, req request) result {
	t.Helper()
	return w.sendVia(t, key, req, w.serve)
}

func (w *world) sendVia(t *testing.T, key string, req request, serve func(*http.Request) *httptest.ResponseRecorder) result {
	t.Helper()
	body := req.body
	if body == "" {
		b, err := json.Marshal(map[string]any{"query": req.query, "variables": req.variables})
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	hr := httptest.NewRequest(http.MethodPost, "https://flags.example.com/graphql", strings.NewReader(body))
	switch req.contentType {
	case "":
		hr.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		hr.Header.Set("Content-Type", req.contentType)
	}
	if key != "" {
		hr.Header.Set("Authorization", "Bearer "+key)
	}
	rec := serve(hr)
	raw := rec.Body.Bytes()
	res := result{Status: rec.Code, Header: rec.Header(), Body: string(raw)}

	if got := res.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store: %s", got, res.Body)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q, want nosniff", got)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatalf("response is not a JSON object (%v): %d %s", err, res.Status, res.Body)
	}
	for k := range top {
		if k != "data" && k != "errors" && k != "extensions" {
			t.Errorf("response has member %q: %s", k, res.Body)
		}
	}
	if d, ok := top["data"]; ok && string(d) != "null" {
		if err := json.Unmarshal(d, &res.Data); err != nil {
			t.Fatalf("data is not an object: %s", res.Body)
		}
		// Mutation results are nullable: data whose every root field is
		// null carries nothing, like data: null.
		empty := true
		for _, v := range res.Data {
			if string(v) != "null" {
				empty = false
			}
		}
		if empty {
			res.Data = nil
		}
	}
	if e, ok := top["errors"]; ok {
		if err := json.Unmarshal(e, &res.Errors); err != nil {
			t.Fatalf("errors: %v in %s", err, res.Body)
		}
		if len(res.Errors) == 0 {
			t.Errorf("empty errors list: %s", res.Body)
		}
	}
	if res.Data == nil && len(res.Errors) == 0 {
		t.Errorf("neither data nor errors: %d %s", res.Status, res.Body)
	}
	for _, e := range res.Errors {
		if e.Message == "" || e.code() == "" {
			t.Errorf("error without message or extensions.code: %s", res.Body)
		}
	}
	if res.Status >= 400 && res.Data != nil {
		t.Errorf("status %d with data: %s", res.Status, res.Body)
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if strings.Contains(strings.ToLower(res.Body), "digest") {
		t.Errorf("response mentions a digest: %s", res.Body)
	}
	for s := range w.secrets {
		if strings.Contains(res.Body, s) {
			t.Errorf("response holds the secret %s issued earlier: %s", apikey.Hint(s), res.Body)
		}
		if strings.Contains(res.Body, apikey.DigestOf(s).String()) {
			t.Errorf("response holds the digest of %s", apikey.Hint(s))
		}
	}
	issuing := strings.Contains(req.query+req.body, "createAPIKey") || strings.Contains(req.query+req.body, "rotateAPIKey")
	found := fullKey.FindAllString(res.Body, -1)
	if len(found) > 0 && !issuing {
		t.Errorf("a response to something other than createAPIKey or rotateAPIKey holds a key: %s", res.Body)
	}
	for _, s := range found {
		w.secrets[s] = true
	}
	return res
}

// keyView is a key as the API shows it, for the fields the tests compare.
type keyView struct {
	ID          string     `json:"id"`
	Key         string     `json:"key"`
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Kind        string     `json:"kind"`
	Permissions []string   `json:"permissions"`
	Project     *string    `json:"project"`
	Environment *string    `json:"environment"`
	Resources   []string   `json:"resources"`
	Hint        string     `json:"hint"`
	Status      string     `json:"status"`
	CreatedAt   *time.Time `json:"createdAt"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	RevokedAt   *time.Time `json:"revokedAt"`
	RotatedAt   *time.Time `json:"rotatedAt"`
	LastUsedAt  *time.Time `json:"lastUsedAt"`
	Owner       *struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Name  string `json:"name"`
		Role  string `json:"role"`
	} `json:"owner"`
	PreviousKeyValidUntil *time.Time `json:"previousKeyValidUntil"`
}

// ids lists the ids of keys, sorted.
func ids(keys []keyView) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	sort.Strings(out)
	return out
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}
