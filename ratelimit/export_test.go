package ratelimit

// SetMinSweep lowers m's per-shard sweep threshold, so that a test can watch
// call-driven sweeping with a few thousand keys instead of 64 × 1024.
func SetMinSweep(m *MemoryLimiter, n int) { m.minSweep = n }
