package ratelimit

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidLimit is returned (wrapped) by Allow and AllowN for a Limit that
// GCRA cannot run: a non-positive Rate or Period, a negative Burst, or a rate
// finer than one request per nanosecond; and by AllowN for a cost n below 1,
// which would refill the bucket or spend nothing. Every limiter rejects the
// same limits, so a misconfiguration fails the same way whichever backend is
// in use.
var ErrInvalidLimit = errors.New("ratelimit: invalid limit")

// checkN returns an error wrapping ErrInvalidLimit unless n, the cost of
// one AllowN call, is at least 1.
func checkN(n int) error {
	if n < 1 {
		return fmt.Errorf("%w: cost n = %d, want at least 1", ErrInvalidLimit, n)
	}
	return nil
}

// burst is the bucket size actually used: the package promises Burst = Rate,
// and an unset Burst would otherwise mean a bucket that never admits anything
// (redis_rate refuses every request when burst is 0).
func (l Limit) burst() int {
	if l.Burst == 0 {
		return l.Rate
	}
	return l.Burst
}

// gcra returns the emission interval (the time one request "costs") and the
// burst offset (how far ahead of now the theoretical arrival time may run) of
// l, in nanoseconds, checking that l is usable.
func (l Limit) gcra() (emission, burstOffset int64, err error) {
	burst := l.burst()
	if l.Rate <= 0 || l.Period <= 0 || burst < 0 {
		return 0, 0, fmt.Errorf("%w: %d/%s burst %d", ErrInvalidLimit, l.Rate, l.Period, l.Burst)
	}
	emission = int64(l.Period) / int64(l.Rate)
	// Guard the multiplication below and the tat arithmetic: a bucket deeper
	// than ~100 years of nanoseconds is a configuration error, not a limit.
	if emission == 0 || int64(burst) > math.MaxInt64/4/emission {
		return 0, 0, fmt.Errorf("%w: %d/%s burst %d is out of range", ErrInvalidLimit, l.Rate, l.Period, l.Burst)
	}
	return emission, emission * int64(burst), nil
}
