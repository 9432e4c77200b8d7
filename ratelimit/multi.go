package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Check is one bucket of a multi-bucket check ([MultiLimiter.AllowAll]): a
// GCRA bucket under Limit, or, when Quota is set, a quota of Quota requests
// per calendar Period.
type Check struct {
	// Key names the bucket among those of the call's group. The empty Key
	// is the group's own bucket: the one Allow and AllowN spend when given
	// the group as their key, so that a request can spend from it and from
	// more buckets in one step. It must be a GCRA bucket.
	Key string
	// Limit is a GCRA bucket's limit. It is ignored for a quota.
	Limit Limit
	// Quota, if positive, makes the bucket a quota: at most Quota requests
	// from the start of the current Period (UTC) to its end.
	Quota  int64
	Period Period
	// Name is the limit's name in the IETF RateLimit fields; the caller's
	// choice, unused by the limiter.
	Name string
	// Shadow makes the bucket advisory: it is checked and spent like the
	// others, and its Result says whether it would have refused, but it
	// never refuses the request.
	Shadow bool
}

// MultiResult is the outcome of a multi-bucket check.
type MultiResult struct {
	// Allowed reports whether the request was admitted: every bucket that
	// is not Shadow admitted it.
	Allowed bool
	// Results holds one Result per Check, in the order given. A Shadow
	// bucket's Allowed says whether it would have admitted the request. A
	// quota's Limit is its count over the period's length, its Remaining
	// what is left of it, and its ResetAfter, like its RetryAfter when it
	// refuses, the time until the period ends.
	Results []Result
}

// MultiLimiter checks one request against several buckets at once.
type MultiLimiter interface {
	// AllowAll spends n from every bucket of checks, all or nothing, in one
	// atomic step: the request is admitted only if every bucket that is not
	// Shadow admits n, and then spends n from each bucket that has room
	// (a Shadow bucket without room is left as it is); a refused request
	// spends from none. group names the buckets' owner (a key id, an
	// identity): Check keys are unique within it, and on Redis the
	// buckets of one group share one hash slot, so that one script run can
	// check them all. n and every Limit are checked as for AllowN, every
	// Quota must come with a known Period; a bad one returns an error
	// wrapping [ErrInvalidLimit] without touching any bucket.
	AllowAll(ctx context.Context, group string, checks []Check, n int) (MultiResult, error)
}

// quotaWindow returns, for a quota bucket at time now, the period's
// identifier (part of the bucket's key, so that a new period starts a new
// count) and its bounds.
func quotaWindow(p Period, now time.Time) (id string, start, end time.Time) {
	start, end = p.Bounds(now)
	if p == Month {
		return start.Format("2006-01"), start, end
	}
	return start.Format("2006-01-02"), start, end
}

// checkAll validates a multi-bucket check before any bucket is touched.
func checkAll(group string, checks []Check, n int) error {
	if err := checkN(n); err != nil {
		return err
	}
	if len(checks) == 0 {
		return fmt.Errorf("%w: no buckets to check", ErrInvalidLimit)
	}
	if group == "" || strings.ContainsAny(group, "{}") {
		return fmt.Errorf("%w: group %q", ErrInvalidLimit, group)
	}
	for i, c := range checks {
		if c.Quota > 0 {
			if c.Period != Day && c.Period != Month {
				return fmt.Errorf("%w: quota %q has period %q", ErrInvalidLimit, c.Key, c.Period)
			}
		} else if _, _, err := c.Limit.gcra(); err != nil {
			return err
		}
		if strings.ContainsAny(c.Key, "{}") || c.Key == "" && c.Quota > 0 {
			return fmt.Errorf("%w: bucket key %q", ErrInvalidLimit, c.Key)
		}
		for j := range i {
			if checks[j].Key == c.Key {
				return fmt.Errorf("%w: bucket key %q given twice", ErrInvalidLimit, c.Key)
			}
		}
	}
	return nil
}

// quotaLimit is how a quota reports itself as a Limit: Quota requests per
// period length.
func quotaLimit(c Check, start, end time.Time) Limit {
	return Limit{Rate: int(min(c.Quota, int64(^uint(0)>>1))), Period: end.Sub(start), Burst: int(min(c.Quota, int64(^uint(0)>>1)))}
}

// allowAllScript checks and spends several buckets of one hash slot in one
// atomic run: GCRA buckets in redis_rate's stored format (see tatLua), and
// quotas as plain counters that expire when their period ends. KEYS are the
// buckets; ARGV[1] is n, then four arguments per bucket: the kind ("g" or
// "q"), then for "g" the emission interval in ns and the burst, for "q"
// the quota and the period's end in Unix milliseconds, and last "1" for a
// Shadow bucket, "0" otherwise. It returns a flat list: 1 or 0 (the request
// was admitted), then per bucket {fits, remaining, retry_after_ns,
// reset_after_ns}.
var allowAllScript = redis.NewScript(tatLua + `
local n = tonumber(ARGV[1])
local now_ms = (tonumber(t[1]) * 1000) + math.floor(tonumber(t[2]) / 1000)
local state = {}
local allowed = true
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 4
  local b = {kind = ARGV[a + 1], shadow = ARGV[a + 4] == '1'}
  if b.kind == 'g' then
    b.emission = tonumber(ARGV[a + 2])
    b.burst = tonumber(ARGV[a + 3])
    b.offset = b.emission * b.burst
    b.tat = read_tat(KEYS[i])
    -- As in allowAtMostScript: how many requests of cost 1 fit now.
    b.available = math.floor((b.offset - b.tat) / b.emission)
  else
    b.quota = tonumber(ARGV[a + 2])
    b.ends = tonumber(ARGV[a + 3])
    b.used = tonumber(redis.call('GET', KEYS[i]) or '0')
    b.available = b.quota - b.used
  end
  b.fits = b.available >= n
  if not b.fits and not b.shadow then allowed = false end
  state[i] = b
end

local out = {allowed and 1 or 0}
for i = 1, #KEYS do
  local b = state[i]
  local spent = 0
  if allowed and b.fits then spent = n end
  local remaining = b.available - spent
  if remaining < 0 then remaining = 0 end
  local retry_after, reset_after = 0, 0
  if b.kind == 'g' then
    if spent > 0 then
      b.tat = b.tat + spent * b.emission
      write_tat(KEYS[i], b.tat)
    end
    reset_after = b.tat
    if not b.fits then
      if n > b.burst then
        -- Never admissible: report the time until the bucket is full.
        retry_after = b.tat
      else
        -- n more requests need tat + n*emission <= now + offset.
        retry_after = b.tat + n * b.emission - b.offset
      end
    end
  else
    if spent > 0 then
      redis.call('INCRBY', KEYS[i], spent)
      redis.call('PEXPIREAT', KEYS[i], b.ends)
    end
    reset_after = (b.ends - now_ms) * 1e6
    if reset_after < 0 then reset_after = 0 end
    if not b.fits then retry_after = reset_after end
  end
  out[#out + 1] = b.fits and 1 or 0
  out[#out + 1] = remaining
  out[#out + 1] = retry_after
  out[#out + 1] = reset_after
end
return out
`)

// allowAllRedis runs allowAllScript for one multi-bucket check, with the
// buckets under prefix + "{" + group + "}:" + key, and the group's own
// bucket (Key "") under own + group + "}", where the single-bucket
// limiters keep it: the braces put all of a group's buckets in one hash
// slot.
func allowAllRedis(ctx context.Context, client redis.Scripter, prefix, own, group string, checks []Check, n int) (MultiResult, error) {
	if err := checkAll(group, checks, n); err != nil {
		return MultiResult{}, err
	}
	now := time.Now()
	keys := make([]string, len(checks))
	args := make([]any, 1, 1+4*len(checks))
	args[0] = n
	limits := make([]Limit, len(checks))
	for i, c := range checks {
		key := prefix + "{" + group + "}:" + c.Key
		shadow := "0"
		if c.Shadow {
			shadow = "1"
		}
		if c.Quota > 0 {
			id, start, end := quotaWindow(c.Period, now)
			keys[i] = key + ":" + id
			limits[i] = quotaLimit(c, start, end)
			args = append(args, "q", c.Quota, end.UnixMilli(), shadow)
		} else {
			emission, _, _ := c.Limit.gcra()
			keys[i] = key
			if c.Key == "" {
				keys[i] = own + group + "}"
			}
			limits[i] = c.Limit
			args = append(args, "g", emission, c.Limit.burst(), shadow)
		}
	}
	vals, err := allowAllScript.Run(ctx, client, keys, args...).Int64Slice()
	if err != nil {
		return MultiResult{}, fmt.Errorf("ratelimit: redis multi-bucket check: %w", err)
	}
	if len(vals) != 1+4*len(checks) {
		return MultiResult{}, fmt.Errorf("ratelimit: redis multi-bucket check: %d values in the answer, want %d", len(vals), 1+4*len(checks))
	}
	res := MultiResult{Allowed: vals[0] == 1, Results: make([]Result, len(checks))}
	for i := range checks {
		v := vals[1+4*i:]
		res.Results[i] = Result{
			Limit:      limits[i],
			Allowed:    v[0] == 1,
			Remaining:  int(v[1]),
			RetryAfter: time.Duration(v[2]),
			ResetAfter: time.Duration(v[3]),
		}
	}
	return res, nil
}

// groupKey is a bucket's name in the in-process limiter: the group and the
// check's key, which holds no brace (checkAll), apart; the group itself for
// its own bucket, which Allow(group) spends.
func groupKey(group, key string) string {
	if key == "" {
		return group
	}
	return "{" + group + "}:" + key
}

// Nearest returns the index in checks of the rate limit (not a quota)
// nearest to refusing: one that refused, if any did (the one refusing
// longest), else the one with the least share of its limit left. It
// returns -1 when every check is a quota.
func (m MultiResult) Nearest(checks []Check) int {
	best := -1
	for i, c := range checks {
		if c.Quota > 0 {
			continue
		}
		if best < 0 || nearer(m.Results[i], m.Results[best]) {
			best = i
		}
	}
	return best
}

// nearer reports whether a is nearer to refusing than b.
func nearer(a, b Result) bool {
	if a.Allowed != b.Allowed {
		return !a.Allowed
	}
	if !a.Allowed {
		return a.RetryAfter > b.RetryAfter
	}
	// a.Remaining/a.Rate < b.Remaining/b.Rate, without division.
	return int64(a.Remaining)*int64(b.Limit.Rate) < int64(b.Remaining)*int64(a.Limit.Rate)
}

// RetryAfter is how long until every bucket that refused (shadow ones
// included, as enforcement would see them) would admit the request: the
// longest RetryAfter among them; zero if none refused.
func (m MultiResult) RetryAfter() time.Duration {
	var d time.Duration
	for _, r := range m.Results {
		if !r.Allowed {
			d = max(d, r.RetryAfter)
		}
	}
	return d
}

// QuotaRefused reports whether a quota that is not Shadow refused the
// request.
func (m MultiResult) QuotaRefused(checks []Check) bool {
	for i, c := range checks {
		if c.Quota > 0 && !c.Shadow && !m.Results[i].Allowed {
			return true
		}
	}
	return false
}

// Headers renders the headers of a multi-bucket check as of now:
// X-RateLimit-* describe the rate limit nearest to refusing ([Nearest]),
// Retry-After, on a refusal, is [MultiResult.RetryAfter], and X-Quota-*
// describe the quota, if one applies (its limit, what is left, and the
// Unix time its period ends). The request is reported as enforcement
// sees it: a Shadow bucket that would refuse reports 0 remaining, but no
// Retry-After unless the request was refused.
func (m MultiResult) Headers(checks []Check, now time.Time) Headers {
	var hv Headers
	if i := m.Nearest(checks); i >= 0 {
		r := m.Results[i]
		r.Allowed = m.Allowed
		if !m.Allowed {
			r.RetryAfter = m.RetryAfter()
		}
		hv = r.Headers(now)
	}
	// The quota nearest to refusing, if there are several (a key's and
	// its identity's).
	qi := -1
	for i, c := range checks {
		if c.Quota > 0 && (qi < 0 || nearer(m.Results[i], m.Results[qi])) {
			qi = i
		}
	}
	if qi >= 0 {
		q := m.Results[qi]
		// The period's end exactly, not now plus a reset rounded on
		// another clock.
		_, end := checks[qi].Period.Bounds(now)
		hv.q = &[3]string{
			strconv.FormatInt(checks[qi].Quota, 10),
			strconv.Itoa(max(q.Remaining, 0)),
			strconv.FormatInt(end.Unix(), 10),
		}
		if hv.r == nil && !m.Allowed {
			// Only quotas: Retry-After still goes with the refusal.
			hv.r = &rendered{}
			hv.r.vals[valRetryAfter] = strconv.FormatInt(Result{RetryAfter: m.RetryAfter()}.RetryAfterSeconds(), 10)
		}
	}
	return hv
}
