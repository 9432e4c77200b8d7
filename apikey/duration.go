package apikey

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Bounds on the lifetimes users may ask for.
const (
	MinLifetime = time.Minute
	MaxLifetime = 365 * 24 * time.Hour
	// MaxGracePeriod bounds how long a rotated-out secret keeps working.
	MaxGracePeriod = 7 * 24 * time.Hour
)

// ParseDuration reads the durations people write for key lifetimes and grace
// periods: Go durations ("12h", "90m", "1h30m") plus days and weeks ("30d",
// "2w"). Negative and zero durations are refused.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var d time.Duration
	if unit := s[len(s)-1]; unit == 'd' || unit == 'w' {
		n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use e.g. \"30d\", \"12h\", \"90m\")", s)
		}
		day := 24 * time.Hour
		if unit == 'w' {
			day *= 7
		}
		if n > uint64(MaxLifetime/day)*10 {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		d = time.Duration(n) * day
	} else {
		var err error
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q (use e.g. \"30d\", \"12h\", \"90m\")", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	return d, nil
}
