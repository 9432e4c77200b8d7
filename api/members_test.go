package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/identity"
	"github.com/flagbridge/flagbridge/admin/keys"
)

// The members of an organization are REST routes: listing them, inviting
// one (the answer holds the invitation link, its token in the fragment)
// and removing one, for organization-wide admin keys acting for an owner or
// admin.
func TestMemberRoutes(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	type member struct {
		ID, Email, Name, Role string
		CreatedAt             time.Time `json:"created_at"`
	}
	members := func(t *testing.T, caller *key) []member {
		t.Helper()
		res := s.do(t, caller, "GET", "/v1/members", "")
		var l struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal([]byte(res.body), &l); err != nil || res.code != 200 || len(res.json(t)) != 1 {
			t.Fatalf("GET /v1/members = %d %s", res.code, res.body)
		}
		out := make([]member, len(l.Data))
		for i, raw := range l.Data {
			var fields map[string]any
			_ = json.Unmarshal(raw, &fields)
			if got := keysOf(fields); !slices.Equal(got, []string{"created_at", "email", "id", "name", "role"}) {
				t.Fatalf("member fields %q", got)
			}
			if err := json.Unmarshal(raw, &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	owner := members(t, s.root)
	if len(owner) != 1 || owner[0].Email != "owner@example.com" || owner[0].Name != "Owner" || owner[0].Role != "OWNER" ||
		owner[0].ID != s.root.OwnerID || owner[0].CreatedAt.IsZero() {
		t.Fatalf("members %+v", owner)
	}

	// An invitation: 201 with the link, whose token is in the fragment
	// (never sent to a server) and lets its holder join.
	res := s.do(t, s.root, "POST", "/v1/members/invitations", `{"email":"ana@example.com","name":"Ana","role":"admin"}`)
	if res.code != http.StatusCreated {
		t.Fatalf("invite = %d %s", res.code, res.body)
	}
	m := res.json(t)
	if got := keysOf(m); !slices.Equal(got, []string{"email", "expires_at", "invite_url", "name", "role"}) {
		t.Fatalf("invitation fields %q", got)
	}
	if m["email"] != "ana@example.com" || m["name"] != "Ana" || m["role"] != "ADMIN" {
		t.Fatalf("invitation %s", res.body)
	}
	if exp, err := time.Parse(time.RFC3339, m["expires_at"].(string)); err != nil || time.Until(exp) < identity.InviteTTL-time.Minute || time.Until(exp) > identity.InviteTTL {
		t.Fatalf("expires_at %v", m["expires_at"])
	}
	link := m["invite_url"].(string)
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	token, ok := strings.CutPrefix(u.Fragment, "/invite/")
	if !ok || token == "" || u.Scheme != "https" || u.Host != "flagbridge.test" || u.Path != "/dashboard/" || u.RawQuery != "" ||
		link != "https://flagbridge.test/dashboard/#/invite/"+token {
		t.Fatalf("invite_url %q", link)
	}
	if res.header.Get("Location") != "" || strings.Count(res.body, token) != 1 {
		t.Fatalf("the token appears outside the link: %v %s", res.header, res.body)
	}
	inv, org, err := s.svc.Identity.InviteInfo(ctx, token)
	if err != nil || inv.Email != "ana@example.com" || org == "" {
		t.Fatalf("InviteInfo(token of the link) = %+v %q %v", inv, org, err)
	}
	ana, err := s.svc.Identity.AcceptInvite(ctx, token, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	// Oldest first; both joined within the same second here, so find her.
	got := members(t, s.root)
	i := slices.IndexFunc(got, func(m member) bool { return m.ID == ana.ID })
	if len(got) != 2 || i < 0 || got[i].Role != "ADMIN" || got[i].Email != "ana@example.com" || got[i].Name != "Ana" {
		t.Fatalf("members after accepting %+v", got)
	}

	// Who may: reading takes READ; inviting and removing take WRITE on the
	// whole organization.
	readOnly := s.mint(t, s.root, "", keys.CreateInput{Type: "admin", Permissions: []string{"READ"}})
	project := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "admin"})
	live := s.mint(t, s.root, "alpha", keys.CreateInput{Type: "live", Environment: "production"})
	if got := members(t, readOnly); len(got) != 2 {
		t.Fatalf("read-only key lists %+v", got)
	}
	wrongType := errorBody("FORBIDDEN", "This key type does not have access to this endpoint")
	readOnlyBody := errorBody("FORBIDDEN", "This key is read-only and cannot make changes")
	wholeOrg := errorBody("FORBIDDEN", `This key belongs to project "alpha" and cannot manage the members of the whole organization; use an organization-wide admin key`)
	people := []string{"members/" + s.orgID, "member-emails/" + s.orgID, "invites", "invites-of/" + s.orgID}
	before := s.snapshot(t, people...)
	for _, tc := range []struct {
		caller       *key
		method, path string
		body         string
		want         string
	}{
		{live, "GET", "/v1/members", "", wrongType},
		{live, "POST", "/v1/members/invitations", `{"email":"bo@example.com","name":"Bo"}`, wrongType},
		{live, "DELETE", "/v1/members/" + ana.ID, "", wrongType},
		{readOnly, "POST", "/v1/members/invitations", `{"email":"bo@example.com","name":"Bo"}`, readOnlyBody},
		{readOnly, "DELETE", "/v1/members/" + ana.ID, "", readOnlyBody},
		{project, "POST", "/v1/members/invitations", `{"email":"bo@example.com","name":"Bo"}`, wholeOrg},
		{project, "DELETE", "/v1/members/" + ana.ID, "", wholeOrg},
	} {
		wantBody(t, s.do(t, tc.caller, tc.method, tc.path, tc.body), 403, tc.want)
	}
	if s.snapshot(t, people...) != before {
		t.Fatal("a refused request changed the store")
	}
	if got := members(t, s.root); len(got) != 2 {
		t.Fatalf("a refused removal removed: %+v", got)
	}

	// Removal: 204, then the member is gone.
	del := s.do(t, s.root, "DELETE", "/v1/members/"+ana.ID, "")
	if del.code != http.StatusNoContent {
		t.Fatalf("remove = %d %s", del.code, del.body)
	}
	if got := members(t, s.root); len(got) != 1 || got[0].ID != owner[0].ID {
		t.Fatalf("members after removal %+v", got)
	}
	wantBody(t, s.do(t, s.root, "DELETE", "/v1/members/"+ana.ID, ""), 404,
		errorBody("NOT_FOUND", fmt.Sprintf("member %q not found", ana.ID)))
	wantBody(t, s.do(t, s.root, "DELETE", "/v1/members/"+owner[0].ID, ""), 409,
		errorBody("CONFLICT", "owner@example.com is the organization's last owner"))
	wantBody(t, s.do(t, s.root, "POST", "/v1/members/invitations", `{"email":"owner@example.com","name":"Owner"}`), 409,
		errorBody("CONFLICT", "owner@example.com is already a member"))
}
