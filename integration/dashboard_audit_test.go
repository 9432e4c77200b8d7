package integration

import (
	"strings"
	"testing"
)

// The dashboard's flag history: the versions with their authors, what one
// changed, and a revert with one click (and a confirmation), which the API
// then serves; the audit log page lists the revert and filters by action.
func TestDashboardFlagHistoryAndAuditLog(t *testing.T) {
	t.Parallel()
	d := startDashboard(t)
	mustStatus(t, call(t, d.c, "POST", "/v1/projects", d.admin, `{"slug":"shop","name":"Shop"}`), 201)
	base := "/v1/projects/shop/environments/production/flags"
	mustStatus(t, call(t, d.c, "PUT", base+"/checkout", d.admin, `{"state":"ENABLED","variants":{"new":true,"old":false},"defaultVariant":"old"}`), 201)
	mustStatus(t, call(t, d.c, "PUT", base+"/checkout", d.admin, `{"state":"ENABLED","variants":{"new":true,"old":false},"defaultVariant":"new"}`), 200)
	mustStatus(t, call(t, d.c, "PUT", base+"/banner", d.admin, `{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`), 201)

	tab := d.b.Tab()
	d.login(tab, ownerEmail, ownerPassword)
	d.goTo(tab, "flags?project=shop&env=production")
	d.waitText(tab, "#flag-set-version-number", "3")
	d.click(tab, "#flag-history")
	d.visible(tab, `#history-list tr[data-version="3"]`)
	if got := evalJS[[]string](d, tab, `[...document.querySelectorAll('#history-list tr[data-version]')].map((r) => r.dataset.version)`); strings.Join(got, ",") != "3,2,1" {
		t.Fatalf("the history lists versions %v", got)
	}
	d.waitText(tab, `#history-list tr[data-version="3"]`, "Current")
	d.waitText(tab, `#history-list tr[data-version="2"]`, "key_")
	// What version 2 changed: checkout's default variant.
	d.click(tab, `#history-list tr[data-version="2"] .show-changes`)
	d.waitText(tab, `#history-list .diff-list li[data-flag="checkout"]`, "changed: defaultVariant")
	d.shot(tab, "flag-history")

	// Revert to version 1, confirmed: version 4 holds version 1's flags.
	d.click(tab, `#history-list tr[data-version="1"] .revert-version`)
	d.visible(tab, "#revert-dialog")
	d.click(tab, "#revert-dialog button[type=submit]")
	d.gone(tab, "#revert-dialog")
	d.waitText(tab, "#flag-set-version-number", "4")
	d.waitText(tab, `#history-list tr[data-version="4"]`, "restores 1")
	got := mustStatus(t, call(t, d.c, "GET", base, d.admin, ""), 200)
	if strings.Contains(got.Body, "banner") || !strings.Contains(got.Body, `"defaultVariant": "old"`) {
		t.Fatalf("after the revert the set is %s", got.Body)
	}

	// The audit log page: the revert by the member, first; filtered to
	// api_key.*, none of the flag writes.
	d.goTo(tab, "audit")
	d.visible(tab, `#audit-list tr[data-action="flag_set.reverted"]`)
	if first := evalJS[string](d, tab, `document.querySelector('#audit-list tbody tr').dataset.action`); first != "flag_set.reverted" {
		t.Fatalf("the newest entry is %s", first)
	}
	d.waitText(tab, `#audit-list tr[data-action="flag_set.reverted"]`, "member")
	d.waitText(tab, `#audit-list tr[data-action="flag_set.reverted"]`, "restores 1")
	d.waitText(tab, `#audit-list tr[data-action="dashboard.login"]`, "success")
	d.shot(tab, "audit-log")
	d.typeInto(tab, "#audit-action", "flag.*")
	d.click(tab, "#audit-apply")
	d.visible(tab, `#audit-list tr[data-action="flag.updated"]`)
	if n := evalJS[int](d, tab, `document.querySelectorAll('#audit-list tr[data-action]:not([data-action^="flag."])').length`); n != 0 {
		t.Fatalf("filtered to flag.*, %d other entries show", n)
	}
	if n := evalJS[int](d, tab, `document.querySelectorAll('#audit-list tr[data-action="flag.updated"]').length`); n != 3 {
		t.Fatalf("filtered to flag.*, %d flag.updated entries, want 3", n)
	}
	// Another environment of the project: nothing happened there.
	evalJS[bool](d, tab, `(() => { const s = document.querySelector('#audit-project'); s.value = 'shop'; s.dispatchEvent(new Event('change')); return true; })()`)
	d.typeInto(tab, "#audit-environment", "staging")
	d.click(tab, "#audit-apply")
	d.waitText(tab, "#audit-list", "Nothing recorded")
}
