package routes

import "testing"

func TestMatch(t *testing.T) {
	p := compile("/v1/projects/{project}/api-keys")
	cases := map[string]bool{
		"/v1/projects/my-app/api-keys":       true,
		"/v1/projects//api-keys":             false,
		"/v1/projects/my-app/api-keys/":      false,
		"/v1/projects/my-app":                false,
		"/v1/projects/my-app/api-keys/extra": false,
		"v1/projects/my-app/api-keys":        false,
		"/v1/projects/a/b/api-keys":          false,
		"/V1/projects/my-app/api-keys":       false,
		"":                                   false,
	}
	for path, want := range cases {
		if got := p.match(path); got != want {
			t.Errorf("Match(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestParams(t *testing.T) {
	p := compile("/v1/testing/sessions/{id}/overrides")
	got := map[string]string{}
	if !p.params("/v1/testing/sessions/ts_1/overrides", func(n, v string) { got[n] = v }) {
		t.Fatal("no match")
	}
	if got["id"] != "ts_1" || len(got) != 1 {
		t.Fatalf("params = %v", got)
	}
}

func TestRootAndSingle(t *testing.T) {
	if !compile("/graphql").match("/graphql") || compile("/graphql").match("/graphql/") {
		t.Fatal("single-segment pattern")
	}
}

func TestCompilePanicsOnMalformed(t *testing.T) {
	for _, bad := range []string{"v1", "/v1//x", "/v1/{}", "/v1/a{b}", "/v1/{a...}/b", "/v1/{...}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("compile(%q) did not panic", bad)
				}
			}()
			compile(bad)
		}()
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	p := compile("/v1/projects/{project}/environments")
	if n := testing.AllocsPerRun(100, func() { p.match("/v1/projects/x/environments") }); n != 0 {
		t.Fatalf("Match allocates %v times", n)
	}
}

func TestRestAndTrailingSlash(t *testing.T) {
	rest := compile("/dashboard/assets/{path...}")
	got := ""
	if !rest.params("/dashboard/assets/pages/keys.js", func(_, v string) { got = v }) || got != "pages/keys.js" {
		t.Fatalf("rest = %q", got)
	}
	for _, path := range []string{"/dashboard/assets/", "/dashboard/assets", "/dashboard/other/x"} {
		if rest.match(path) {
			t.Errorf("%s matched %s", rest, path)
		}
	}
	slash := compile("/dashboard/")
	if !slash.match("/dashboard/") || slash.match("/dashboard") || slash.match("/dashboard/x") {
		t.Fatal("a pattern ending in / matches only itself")
	}
}
