package routes_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/flagbridge/flagbridge/apikey"
	"github.com/flagbridge/flagbridge/routes"
)

// TestREADMEScopeTable keeps the README's scope table true: every endpoint
// a row names takes an API key, needs the least key type of the row's first
// "yes" and the row's permission, and every other API-key route of the
// table is an admin route under /v1 whose permission follows its method.
func TestREADMEScopeTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "| Endpoint | client | live | test | admin | permission |")
	if start < 0 {
		t.Fatal("README.md has no scope table")
	}
	rows := strings.Split(text[start:], "\n")
	endpoint := regexp.MustCompile("`(GET|POST|PUT|DELETE) (/[^` ]+)`")
	listed := map[*routes.Route]bool{}
	others := false
	for _, row := range rows[2:] {
		if !strings.HasPrefix(row, "|") {
			break
		}
		cells := strings.Split(strings.Trim(row, "|"), "|")
		if len(cells) != 6 {
			t.Fatalf("row %q has %d cells", row, len(cells))
		}
		var least apikey.Type
		for i, typ := range apikey.Types {
			if strings.TrimSpace(cells[i+1]) == "yes" {
				least = typ
				break
			}
		}
		perm := strings.TrimSpace(cells[5])
		if strings.Contains(cells[0], "every other endpoint under `/v1`") {
			others = true
			if least != apikey.Admin || perm != "READ for GET, WRITE for the others" {
				t.Errorf("row %q", row)
			}
			continue
		}
		for _, m := range endpoint.FindAllStringSubmatch(cells[0], -1) {
			found := false
			for i := range routes.All() {
				r := &routes.All()[i]
				if r.Method != m[1] || r.Pattern != m[2] {
					continue
				}
				found, listed[r] = true, true
				if r.Credential != routes.APIKey || r.Needs.Type != least || string(r.Needs.Permission) != perm {
					t.Errorf("README says %s %s takes %s with %s; the table says %v, %s, %s",
						m[1], m[2], least, perm, r.Credential, r.Needs.Type, r.Needs.Permission)
				}
			}
			if !found {
				t.Errorf("README names %s %s, which the route table does not have", m[1], m[2])
			}
		}
	}
	if !others {
		t.Fatal("the scope table lost its row for every other endpoint")
	}
	for i := range routes.All() {
		r := &routes.All()[i]
		if r.Credential != routes.APIKey || listed[r] {
			continue
		}
		want := routes.MethodPermission(r.Method)
		if !strings.HasPrefix(r.Pattern, "/v1/") || r.Needs.Type != apikey.Admin || r.Needs.Permission != want {
			t.Errorf("%s %s (%s, %s) is not in the README's scope table and is not an admin route of /v1 with %s",
				r.Method, r.Pattern, r.Needs.Type, r.Needs.Permission, want)
		}
	}
}
