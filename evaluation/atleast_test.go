package evaluation

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flagbridge/flagbridge/admin/flags"
)

// countingSource serves one flag set at a version and counts its reads.
type countingSource struct {
	version atomic.Int64
	reads   atomic.Int64
}

func (s *countingSource) ReadFlagSet(_ context.Context, ref flags.Ref) (*flags.FlagSet, error) {
	s.reads.Add(1)
	return &flags.FlagSet{Version: s.version.Load(),
		Document: []byte(`{"flags":{"f":{"state":"ENABLED","variants":{"on":true},"defaultVariant":"on"}}}`)}, nil
}

// A refetch naming a version the instance has not heard of reads the set
// again and gets it; naming one that does not exist cannot make every
// request a read.
func TestRegistryAtLeast(t *testing.T) {
	src := &countingSource{}
	src.version.Store(3)
	reg := NewRegistry(src, time.Hour)
	now := time.Unix(1_800_000_000, 0)
	reg.now = func() time.Time { return now }
	ref := flags.Ref{OrgID: "o", Project: "p", Environment: "e"}
	ctx := context.Background()
	if c, err := reg.AtLeast(ctx, ref, 0); err != nil || c.Version != 3 || src.reads.Load() != 1 {
		t.Fatalf("first = %v %v, %d reads", c, err, src.reads.Load())
	}
	// Written elsewhere, the feed not here yet: read again.
	src.version.Store(4)
	if c, _ := reg.AtLeast(ctx, ref, 4); c.Version != 4 || src.reads.Load() != 2 {
		t.Fatalf("after a write = %d, %d reads", c.Version, src.reads.Load())
	}
	// A version that does not exist: the newest, and not a read per
	// request (one per forcedReadEvery).
	now = now.Add(forcedReadEvery)
	for range 100 {
		if c, _ := reg.AtLeast(ctx, ref, 999); c.Version != 4 {
			t.Fatal(c.Version)
		}
	}
	if n := src.reads.Load(); n != 3 {
		t.Fatalf("100 requests for a version to come made %d reads, want 1 more", n-2)
	}
	now = now.Add(forcedReadEvery)
	reg.AtLeast(ctx, ref, 999)
	if n := src.reads.Load(); n != 4 {
		t.Fatalf("after the bound: %d reads", n)
	}
}
