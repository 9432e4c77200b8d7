package admin_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/flagbridge/flagbridge/admin"
	"github.com/flagbridge/flagbridge/admin/flags"
	"github.com/flagbridge/flagbridge/admin/tenancy"
	"github.com/flagbridge/flagbridge/internal/testenv"
	"github.com/flagbridge/flagbridge/store"
)

// BenchmarkFlagWrite is one flag's write (PUT .../flags/{flag}) into a set
// of 20 flags, on each store: what a change costs, with what it writes
// besides the set (the audit entry, the kept version, deliveries). Run it
// on two builds side by side to see what those cost:
//
//	go test -run '^$' -bench BenchmarkFlagWrite -count 6 ./admin
func BenchmarkFlagWrite(b *testing.B) {
	for _, backend := range []string{"file", "redis"} {
		b.Run(backend, func(b *testing.B) {
			var st store.Store
			var err error
			if backend == "file" {
				st, err = store.OpenFile(b.TempDir(), store.Options{})
			} else {
				st, err = store.OpenRedis(testenv.StartRedis(b).URL(), store.Options{})
			}
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			svc := admin.New(st)
			ctx := context.Background()
			boot, err := svc.Bootstrap(ctx, admin.BootstrapInput{NewOrg: true, OwnerEmail: "o@example.com", OwnerName: "O"})
			if err != nil {
				b.Fatal(err)
			}
			p := boot.Principal
			if _, _, err := svc.Tenancy.CreateProject(ctx, p, tenancy.CreateProjectInput{Slug: "app"}); err != nil {
				b.Fatal(err)
			}
			doc := `{"flags":{`
			for i := range 20 {
				if i > 0 {
					doc += ","
				}
				doc += fmt.Sprintf(`"f%d":{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on","targeting":{"if":[{"==":[{"var":"plan"},"pro"]},"on","off"]}}`, i)
			}
			doc += "}}"
			if _, err := svc.Flags.PutFlagSet(ctx, p, "app", "production", []byte(doc), flags.Precondition{}); err != nil {
				b.Fatal(err)
			}
			defs := [][]byte{
				[]byte(`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"on"}`),
				[]byte(`{"state":"ENABLED","variants":{"on":true,"off":false},"defaultVariant":"off"}`),
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, _, err := svc.Flags.PutFlag(ctx, p, "app", "production", "f0", defs[i%2], flags.Precondition{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
