package slackbot

import (
	"sync"
	"time"
)

// Bounds of the handler's in-memory state, so that no sequence of requests
// grows it without limit.
const (
	// maxSeenSignatures: at the default rate, a 5-minute window holds a few
	// thousand verified requests; past the bound the oldest are forgotten.
	maxSeenSignatures = 50_000
	// maxBuckets per limiter: idle buckets (full again) are dropped first.
	maxBuckets = 10_000
)

// replayCache remembers verified signatures until their timestamp leaves
// the window, after which the timestamp check refuses them anyway.
type replayCache struct {
	mu    sync.Mutex
	max   int
	seen  map[string]time.Time // signature -> expiry
	order []seenEntry          // insertion order, for expiry and eviction
}

type seenEntry struct {
	sig     string
	expires time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[string]time.Time{}}
}

// seenBefore reports whether sig was already seen and has not expired;
// otherwise it remembers sig until expires.
func (c *replayCache) seenBefore(sig string, expires, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	// Requests arrive roughly in timestamp order: expire from the front.
	for len(c.order) > 0 && now.After(c.order[0].expires) {
		c.pop()
	}
	if exp, ok := c.seen[sig]; ok && !now.After(exp) {
		return true
	}
	// Full: forget the oldest rather than refuse new requests.
	for len(c.order) > 0 && len(c.order) >= c.max {
		c.pop()
	}
	c.seen[sig] = expires
	c.order = append(c.order, seenEntry{sig: sig, expires: expires})
	return false
}

func (c *replayCache) pop() {
	e := c.order[0]
	c.order = c.order[1:]
	if exp, ok := c.seen[e.sig]; ok && exp.Equal(e.expires) {
		delete(c.seen, e.sig)
	}
}

// limiter is a set of token buckets by key.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	max     int
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(l RateLimit, max int) *limiter {
	return &limiter{rate: l.PerSecond, burst: float64(l.Burst), max: max, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket; when there is none it returns
// false and how long until there is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.sweep(now)
		}
		if len(l.buckets) >= l.max {
			// Flooded from more sources than we track: start over rather
			// than grow (each source then gets its burst again).
			clear(l.buckets)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if now.After(b.last) {
		b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweep drops buckets that are full again: they are the same as no bucket.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
