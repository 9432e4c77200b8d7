package audit

import "time"

// The collections of the audit log (see package store):
//
//	audit/<org>/<yyyymmdd>   entry id -> Entry, the entries of one UTC day
//	audit-days/<org>         yyyymmdd -> {}, the days that have entries
//	webhooks/<org>           webhook id -> the webhook and its secret
//	webhook-deliveries/<org>/<webhook>   delivery id -> Delivery
//	webhook-pending          <org>/<webhook>/<delivery> -> when it is due
//
// A day per collection keeps a page's read to the days it spans and makes
// retention one collection deleted a day.
func colEntries(org, day string) string { return "audit/" + org + "/" + day }

func colDays(org string) string { return "audit-days/" + org }

const dayLayout = "20060102"

func dayOf(t time.Time) string { return t.UTC().Format(dayLayout) }

func colWebhooks(org string) string { return "webhooks/" + org }

func colDeliveries(org, webhook string) string { return "webhook-deliveries/" + org + "/" + webhook }

// colPending is every organization's pending deliveries, which the
// instances' dispatchers read to find work.
const colPending = "webhook-pending"
