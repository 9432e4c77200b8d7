package ratelimit

import (
	"context"
	"fmt"
	"math"
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
	// PeekAll reports what the buckets of checks hold now, without
	// spending from any: each Result is what AllowAll of cost 1 would see
	// (Remaining is what the bucket holds, Allowed whether it holds one
	// request), and MultiResult.Allowed whether such a request would be
	// admitted. It reads the buckets AllowAll spends, under the same
	// rules for group and checks, for reports of usage; it is no
	// reservation, since any request may spend meanwhile.
	PeekAll(ctx context.Context, group string, checks []Check) (MultiResult, error)
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
	q := int(min(c.Quota, math.MaxInt)) // an int64 quota on a 32-bit int
	return Limit{Rate: q, Period: end.Sub(start), Burst: q}
}

// allowAllScript checks and spends several buckets of one hash slot in one
// atomic run: GCRA buckets in redis_rate's stored format (see tatLua), and
// quotas as plain counters that expire when their period ends. KEYS are the
// buckets; ARGV[1] is n and ARGV[2] the mode, then four arguments per
// bucket: the kind ("g" or "q"), then for "g" the emission interval in ns
// and the burst, for "q" the quota and the period's end in Unix
// milliseconds, and last "1" for a Shadow bucket, "0" otherwise.
//
// In mode [allowAllAllOrNone] it is one request of cost n: admitted if
// every bucket that is not Shadow holds n, and then each bucket that holds
// n spends it. In mode [allowAllAtMost] it is n requests of cost 1, one
// after another: they are admitted up to the least that a bucket which is
// not Shadow holds (a prefix, since a refusal spends nothing and so changes
// nothing for the next one), and each bucket spends one per admission while
// it has room. The two agree for n = 1.
//
// It returns a flat list: how many of n were admitted (n or 0 in "all or
// none" mode), then per bucket {available, reset_ns}: what the bucket held
// before the run (negative for a limit lowered under its use), and, after
// it, the GCRA bucket's TAT relative to now, or the time until the quota's
// period ends. That is enough for multiCall.result to rebuild every
// request's answer exactly, so the reply stays two numbers per bucket
// however many requests a run answers.
var allowAllScript = redis.NewScript(allowAllSource)

// The modes of allowAllScript.
const (
	allowAllAllOrNone = "all"
	allowAllAtMost    = "most"
)

const allowAllSource = tatLua + `
local n = tonumber(ARGV[1])
local at_most = ARGV[2] == '` + allowAllAtMost + `'
local now_ms = (tonumber(t[1]) * 1000) + math.floor(tonumber(t[2]) / 1000)
local state = {}
local admitted = n
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local b = {kind = ARGV[a + 1], shadow = ARGV[a + 4] == '1'}
  if b.kind == 'g' then
    b.emission = tonumber(ARGV[a + 2])
    b.offset = b.emission * tonumber(ARGV[a + 3])
    b.tat = read_tat(KEYS[i])
    -- As in allowAtMostScript: how many requests of cost 1 fit now.
    b.available = math.floor((b.offset - b.tat) / b.emission)
  else
    b.ends = tonumber(ARGV[a + 3])
    b.available = tonumber(ARGV[a + 2]) - tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if not b.shadow and b.available < admitted then
    if at_most then admitted = b.available else admitted = 0 end
  end
  state[i] = b
end
if admitted < 0 then admitted = 0 end

local out = {admitted}
for i = 1, #KEYS do
  local b = state[i]
  -- A bucket short of what was admitted (a Shadow one) spends what it
  -- holds, one request at a time; a cost-n request is not split.
  local spent = admitted
  if b.available < spent then
    if at_most and b.available > 0 then spent = b.available else spent = 0 end
  end
  local reset
  if b.kind == 'g' then
    if spent > 0 then
      b.tat = b.tat + spent * b.emission
      write_tat(KEYS[i], b.tat)
    end
    reset = b.tat
  else
    if spent > 0 then
      -- The count expires with its period: set once, when the period's
      -- first request creates it (the key names the period).
      if redis.call('INCRBY', KEYS[i], spent) == spent then
        redis.call('PEXPIREAT', KEYS[i], b.ends)
      end
    end
    reset = (b.ends - now_ms) * 1e6
    if reset < 0 then reset = 0 end
  end
  out[#out + 1] = b.available
  out[#out + 1] = reset
end
return out
`

// multiCall is one run of allowAllScript: k requests of cost n from one
// group's bucket set, with its keys and arguments, and what it takes to
// read the reply.
type multiCall struct {
	checks    []Check
	n, k      int
	allOrNone bool // k = 1, cost n: admitted whole or not at all
	keys      []string
	args      []any
	limits    []Limit // each bucket's Limit as its Result reports it
	emission  []int64 // GCRA buckets' emission intervals, 0 for quotas
}

// newMultiCall builds the run of allowAllScript for k requests of cost n
// (k = 1 if n > 1), with the buckets under prefix + "{" + group + "}:" +
// key, the group's own bucket (Key "") under own + group + "}", where the
// single-bucket limiters keep it, and the quotas in their periods as of
// now. The braces put all of a group's buckets in one hash slot. checks
// must have passed checkAll.
func newMultiCall(prefix, own, group string, checks []Check, n, k int, now time.Time) *multiCall {
	c := &multiCall{
		checks:    checks,
		n:         n,
		k:         k,
		allOrNone: n > 1,
		keys:      make([]string, len(checks)),
		args:      make([]any, 2, 2+4*len(checks)),
		limits:    make([]Limit, len(checks)),
		emission:  make([]int64, len(checks)),
	}
	c.args[0], c.args[1] = k, allowAllAtMost
	if c.allOrNone {
		c.args[0], c.args[1] = n, allowAllAllOrNone
	}
	for i, ch := range checks {
		key := prefix + "{" + group + "}:" + ch.Key
		shadow := "0"
		if ch.Shadow {
			shadow = "1"
		}
		if ch.Quota > 0 {
			id, start, end := quotaWindow(ch.Period, now)
			c.keys[i] = key + ":" + id
			c.limits[i] = quotaLimit(ch, start, end)
			c.args = append(c.args, "q", ch.Quota, end.UnixMilli(), shadow)
		} else {
			c.emission[i], _, _ = ch.Limit.gcra()
			c.keys[i] = key
			if ch.Key == "" {
				c.keys[i] = own + group + "}"
			}
			c.limits[i] = ch.Limit
			c.args = append(c.args, "g", c.emission[i], ch.Limit.burst(), shadow)
		}
	}
	return c
}

// parse checks a reply of c's run and returns how many requests it
// admitted and the per-bucket values.
func (c *multiCall) parse(cmd *redis.Cmd) (admitted int, vals []int64, err error) {
	vals, err = cmd.Int64Slice()
	if err != nil {
		return 0, nil, err
	}
	if len(vals) != 1+2*len(c.checks) {
		return 0, nil, fmt.Errorf("%d values in the answer, want %d", len(vals), 1+2*len(c.checks))
	}
	a := vals[0]
	if c.allOrNone && a != 0 && a != int64(c.n) || !c.allOrNone && (a < 0 || a > int64(c.k)) {
		return 0, nil, fmt.Errorf("%d admitted, asked for %d of cost %d", a, c.k, c.n)
	}
	for i := 2; i < len(vals); i += 2 {
		if vals[i] < 0 {
			return 0, nil, fmt.Errorf("unexpected script reply %v", vals)
		}
	}
	return int(a), vals[1:], nil
}

// result is the answer of the i-th (from 0) of c's k requests, of which
// admitted were admitted, from the per-bucket values of the reply: what it
// would have got had the k run one after another. For each bucket, the
// requests before it spent before = min(i, admitted, what the bucket held),
// it spent its own if admitted and the bucket then had room, and the later
// ones spent the rest of the bucket's total; its view is the bucket after
// its own spending, the later ones' taken back.
func (c *multiCall) result(i, admitted int, vals []int64) MultiResult {
	res := MultiResult{Results: make([]Result, len(c.checks))}
	n := int64(c.n)
	if c.allOrNone {
		res.Allowed = admitted == c.n
	} else {
		res.Allowed = i < admitted
	}
	for j, ch := range c.checks {
		avail, reset := vals[2*j], vals[2*j+1]
		var before, spent, after int64
		if c.allOrNone {
			if res.Allowed && avail >= n {
				spent = n
			}
		} else {
			total := min(int64(admitted), max(avail, 0))
			before = min(int64(i), total)
			if res.Allowed && avail-before >= 1 {
				spent = 1
			}
			after = total - before - spent
		}
		r := &res.Results[j]
		r.Limit = c.limits[j]
		left := avail - before
		r.Allowed = left >= n
		r.Remaining = int(max(left-spent, 0))
		if ch.Quota > 0 {
			r.ResetAfter = time.Duration(reset)
			if !r.Allowed {
				r.RetryAfter = r.ResetAfter
			}
			continue
		}
		e := c.emission[j]
		r.ResetAfter = time.Duration(reset - after*e)
		switch {
		case r.Allowed:
		case c.n > ch.Limit.burst():
			// Never admissible: the time until the bucket is full.
			r.RetryAfter = r.ResetAfter
		default:
			// n more requests need tat + n*emission <= now + offset; n*e
			// is within the burst offset, which gcra bounds.
			r.RetryAfter = r.ResetAfter + time.Duration((n-int64(ch.Limit.burst()))*e)
		}
	}
	return res
}

// allowAllRedis runs allowAllScript for one multi-bucket check, with the
// keys of newMultiCall.
func allowAllRedis(ctx context.Context, client redis.Scripter, prefix, own, group string, checks []Check, n int) (MultiResult, error) {
	if err := checkAll(group, checks, n); err != nil {
		return MultiResult{}, err
	}
	c := newMultiCall(prefix, own, group, checks, n, 1, time.Now())
	admitted, vals, err := c.parse(allowAllScript.Run(ctx, client, c.keys, c.args...))
	if err != nil {
		return MultiResult{}, fmt.Errorf("ratelimit: redis multi-bucket check: %w", err)
	}
	return c.result(0, admitted, vals), nil
}

// peekAllRedis is PeekAll on Redis: allowAllScript asked for zero
// requests of cost 1, which spends nothing and writes nothing, but reports
// what every bucket holds.
func peekAllRedis(ctx context.Context, client redis.Scripter, prefix, own, group string, checks []Check) (MultiResult, error) {
	if err := checkAll(group, checks, 1); err != nil {
		return MultiResult{}, err
	}
	c := newMultiCall(prefix, own, group, checks, 1, 0, time.Now())
	admitted, vals, err := c.parse(allowAllScript.Run(ctx, client, c.keys, c.args...))
	if err != nil {
		return MultiResult{}, fmt.Errorf("ratelimit: redis multi-bucket peek: %w", err)
	}
	return peeked(c.result(0, admitted, vals), checks), nil
}

// peeked sets a peek's Allowed: whether every bucket that is not Shadow
// holds a request.
func peeked(res MultiResult, checks []Check) MultiResult {
	res.Allowed = true
	for i, c := range checks {
		if !c.Shadow && !res.Results[i].Allowed {
			res.Allowed = false
		}
	}
	return res
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

// WithPolicies adds the IETF fields to hv, the headers of m for checks
// (see [MultiResult.Headers]): RateLimit-Policy lists the policy of every
// bucket, by its Check.Name (a quota's window is its period's length), and
// RateLimit reports the nearest rate limit's, as the X-RateLimit-* headers
// do. Without a rate limit among checks it returns hv unchanged.
func (m MultiResult) WithPolicies(hv Headers, checks []Check) Headers {
	i := m.Nearest(checks)
	if i < 0 || hv.r == nil {
		return hv
	}
	hv = hv.WithPolicy(checks[i].Name) // a copy of hv's values
	parts := make([]string, len(checks))
	for j, c := range checks {
		q, w := int64(c.Limit.Rate), max(ceilSeconds(c.Limit.Period), 1)
		if c.Quota > 0 {
			q, w = c.Quota, max(ceilSeconds(m.Results[j].Limit.Period), 1)
		}
		parts[j] = policyFor(c.Name, q, w).field
	}
	// Each part is a serialized List of one Item: joined, they are one
	// List (RFC 9651, section 3.1).
	hv.r.vals[valPolicy] = strings.Join(parts, ", ")
	return hv
}
