package ratelimit

import "github.com/redis/go-redis/v9"

// allowAtMostScript is the GCRA step of [BatchingRedisLimiter]: it admits up
// to n requests from one bucket, as many as the bucket holds, in one atomic
// run; or, in its "all or none" mode, all n or none (one AllowN of cost n).
// It is FlagBridge's own script, not redis_rate's, for three reasons:
//
//   - it admits "at most n", which is what lets one run answer a whole
//     queue of coalesced requests (redis_rate's allowAtMost does too, but in
//     floats, see below), and "all n or none" in the same arithmetic;
//   - it computes in integer nanoseconds relative to now, so that Remaining,
//     RetryAfter and ResetAfter are exact, and a batch's result splits
//     exactly among its requests (redis_rate computes in float seconds since
//     2017, which today resolve about 60 ns, and truncates Remaining from a
//     float quotient);
//   - it reports RetryAfter even when the last request of a batch was
//     admitted and emptied the bucket, so that the caller can refuse the next
//     ones locally without asking again.
//
// The stored value is redis_rate's, though: the bucket's theoretical arrival
// time (TAT) as decimal seconds since 2017-01-01T00:00:00Z, under the key
// RedisLimiter uses. Both limiters therefore share buckets, and a fleet can
// move from one to the other instance by instance with one exact limit
// across all of them. The TAT is written with nine decimals, which
// redis_rate reads as a float, and read back digit by digit, so that its
// nanoseconds survive the round trip (a float would not hold them).
//
// Numbers in Redis's Lua are doubles, exact on integers up to 2^53: every
// quantity below is an integer number of nanoseconds bounded by the bucket's
// depth (burst × emission interval) plus one second, so the arithmetic is
// exact for buckets up to 2^53 ns, about 104 days, deep. Beyond that it
// degrades to float rounding, as redis_rate always does.
//
// KEYS[1] is the bucket; ARGV is the emission interval in ns (Period/Rate,
// truncated, as [Limit.gcra] computes it), the burst, n >= 1, and an
// optional mode: absent for "at most n", [scriptAllOrNone] for "all n or
// none". It returns {admitted, remaining, retry_after_ns, reset_after_ns}:
// admitted = min(n, what the bucket holds), or in "all or none" mode n if
// all fit and 0 otherwise; remaining = what the bucket holds after them;
// retry_after = how long until one more request would be admitted (0 when
// remaining > 0); reset_after = how long until the bucket is full again
// (the TAT relative to now, after the admissions). remaining and
// retry_after thus speak of one request in both modes, which is what the
// deny cache needs. The bucket is written only when something was
// admitted: a refusal costs nothing.
var allowAtMostScript = redis.NewScript(allowAtMostSource)

// scriptAllOrNone is the script's mode argument for a cost-n check. The
// "at most" mode is the argument's absence, so that a coalesced batch,
// the hot path, sends exactly what it did before the mode existed.
const scriptAllOrNone = "all"

const allowAtMostSource = tatLua + `
local emission = tonumber(ARGV[1])
local burst_offset = emission * tonumber(ARGV[2])
local n = tonumber(ARGV[3])
-- scriptAllOrNone: one request of cost n, admitted whole or not at all.
local all_or_none = ARGV[4] == '` + scriptAllOrNone + `'

local tat = read_tat(KEYS[1])

-- available: how many requests the bucket admits now. Request i (0-based)
-- is admitted iff tat + (i+1)*emission <= now + burst_offset. The quotient
-- of two integers below 2^53 never rounds across an integer, so floor is
-- exact. It is negative when the burst was lowered under a deep bucket.
local available = math.floor((burst_offset - tat) / emission)
local admitted = n
if available < admitted then
  if all_or_none then admitted = 0 else admitted = available end
end
if admitted < 0 then admitted = 0 end

if admitted > 0 then
  tat = tat + admitted * emission
  write_tat(KEYS[1], tat)
end

local remaining = available - admitted
if remaining < 0 then remaining = 0 end
local retry_after = 0
if remaining == 0 then
  -- The next request needs tat + emission <= now + burst_offset.
  retry_after = tat + emission - burst_offset
end
return {admitted, remaining, retry_after, tat}
`

// tatLua is what both of FlagBridge's scripts ([allowAtMostScript] and
// [allowAllScript]) know of a GCRA bucket in Redis: the clock, and
// redis_rate's stored format (see allowAtMostScript), read and written in
// exact integer nanoseconds. It defines now_s and now_ns, and the functions
// read_tat(key), the bucket's TAT in ns after now (0 for a missing or full
// bucket), and write_tat(key, tat), which stores a TAT given in ns after
// now and expires the key when the bucket is full again.
const tatLua = `
-- Effects replication: TIME makes the script non-deterministic, which Redis
-- before 5 refuses to replicate verbatim. Redis 7 ignores the call.
if redis.replicate_commands then redis.replicate_commands() end

-- redis_rate's epoch (2017-01-01): keeps the stored seconds small enough
-- for its float parsing, and is part of the shared format.
local t = redis.call('TIME')
local now_s = tonumber(t[1]) - 1483228800
local now_ns = tonumber(t[2]) * 1000

local function read_tat(key)
  local stored = redis.call('GET', key)
  if not stored then return 0 end
  local s, ns
  local int, frac = string.match(stored, '^(%d+)%.?(%d*)$')
  if int then
    s = tonumber(int)
    ns = tonumber(string.sub(frac .. '000000000', 1, 9))
  else
    -- Not plain decimal digits (an exponent, a sign): parse as a float.
    local f = tonumber(stored)
    if not f then
      error({err = 'ratelimit: bucket ' .. key .. ' holds ' .. stored .. ', not a time'})
    end
    s = math.floor(f)
    ns = math.floor((f - s) * 1e9)
  end
  local tat = (s - now_s) * 1e9 + (ns - now_ns)
  if tat < 0 then tat = 0 end
  return tat
end

local function write_tat(key, tat)
  local at = now_ns + tat
  local carry = math.floor(at / 1e9)
  -- Expire when the bucket is full again: it is then the same as no key.
  redis.call('SET', key,
    string.format('%d.%09d', now_s + carry, at - carry * 1e9),
    'PX', string.format('%d', math.ceil(tat / 1e6)))
end
`
