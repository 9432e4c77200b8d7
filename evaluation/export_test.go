package evaluation

import "time"

// SetClock replaces the registry's clock, for tests of its TTL and Sweep.
// It must be called before the registry is used.
func (r *Registry) SetClock(now func() time.Time) { r.now = now }
