package api_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
)

// GET /v1/audit-log pages newest first with next_cursor, exports NDJSON
// on request, and refuses a filter it does not know by name.
func TestAuditLogHTTP(t *testing.T) {
	s := newServer(t)
	for i := 1; i <= 3; i++ {
		if res := s.do(t, s.root, "POST", "/v1/projects/alpha/environments", `{"slug":"e`+strings.Repeat("x", i)+`"}`); res.code != 201 {
			t.Fatal(res.body)
		}
	}
	res := s.do(t, s.root, "GET", "/v1/audit-log?action=environment.created&limit=2", "")
	var page struct {
		Data []struct {
			Action string
			Target struct{ ID string }
		}
		NextCursor string `json:"next_cursor"`
	}
	if err := json.Unmarshal([]byte(res.body), &page); err != nil || res.code != 200 || len(page.Data) != 2 || page.NextCursor == "" {
		t.Fatalf("first page: %d %s", res.code, res.body)
	}
	if page.Data[0].Target.ID != "exxx" || page.Data[1].Target.ID != "exx" {
		t.Fatalf("not newest first: %s", res.body)
	}
	res = s.do(t, s.root, "GET", "/v1/audit-log?action=environment.created&limit=2&cursor="+page.NextCursor, "")
	if !strings.Contains(res.body, `"id":"ex"}`) || strings.Contains(res.body, "next_cursor") {
		t.Fatalf("second page: %s", res.body)
	}

	exp := s.send(s.root, "GET", "/v1/audit-log?action=environment.*", "", "Accept", "application/x-ndjson")
	if exp.code != 200 || exp.header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %v %s", exp.code, exp.header, exp.body)
	}
	n := 0
	for sc := bufio.NewScanner(strings.NewReader(exp.body)); sc.Scan(); n++ {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e["action"] != "environment.created" {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
	}
	if n != 3 {
		t.Fatalf("export: %d lines\n%s", n, exp.body)
	}

	for query, want := range map[string]string{
		"projct=alpha":        `unknown parameter \"projct\"`,
		"since=yesterday":     `since: \"yesterday\" is neither an RFC 3339 time`,
		"limit=0":             `limit: \"0\" is not a whole number between 1 and 1000`,
		"project=a&project=b": "project: give it once",
	} {
		res := s.do(t, s.root, "GET", "/v1/audit-log?"+query, "")
		if res.code != 400 || !strings.Contains(res.body, want) {
			t.Errorf("%s: %d %s, want 400 with %s", query, res.code, res.body, want)
		}
	}
}
