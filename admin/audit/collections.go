package audit

import "time"

// The collections of the audit log (see package store):
//
//	audit/<org>/<yyyymmdd>   entry id -> Entry, the entries of one UTC day
//	audit-days/<org>         yyyymmdd -> {}, the days that have entries
//
// A day per collection keeps a page's read to the days it spans and makes
// retention one collection deleted a day.
func colEntries(org, day string) string { return "audit/" + org + "/" + day }

func colDays(org string) string { return "audit-days/" + org }

const dayLayout = "20060102"

func dayOf(t time.Time) string { return t.UTC().Format(dayLayout) }
