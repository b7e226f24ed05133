package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fnSource struct {
	name string
	fn   func(n int) (Reading, error)
	mu   sync.Mutex
	n    int
}

func (f *fnSource) Name() string       { return f.name }
func (f *fnSource) Provides() []string { return []string{MetricLatencyMS, MetricErrorRatePct} }
func (f *fnSource) Collect(context.Context, json.RawMessage) (Reading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.n
	f.n++
	if n == 0 {
		return Reading{Cursor: json.RawMessage(`{"n":0}`)}, nil
	}
	return f.fn(n)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return nil
}

// A watcher killed mid-breach resumes from its last heartbeat: the streak
// it had is not lost (a fresh start would need three more bad checks).
func TestWatchResumesFromHeartbeat(t *testing.T) {
	src := &fnSource{name: "pg", fn: func(n int) (Reading, error) {
		lat := 12.0
		if n >= 5 {
			lat = 40
		}
		return Reading{Values: map[string]float64{"latency_ms@pg/t": lat, "error_rate_pct@pg/db": 1}}, nil
	}}
	clock := &fakeClock{now: t0}
	var saved Progress
	ctx, cancel := context.WithCancel(context.Background())
	w := Watch{Sources: []Source{src}, Evaluator: Evaluator{Rules: DefaultMatrix(Thresholds{})}, Baseline: base(),
		Interval: 5 * time.Minute, Deadline: t0.Add(24 * time.Hour), Now: clock.Now, Sleep: clock.Sleep,
		Beat: func(p Progress) { saved = p },
		OnCheck: func(_ Sample, d Decision) {
			if d.At.Equal(t0.Add(30 * time.Minute)) { // check 6: second slow one
				cancel() // the worker dies
			}
		}}
	w.Baseline.Values["latency_ms@pg/t"] = 10
	w.Baseline.Values["error_rate_pct@pg/db"] = 1
	_, err := w.Run(ctx, Progress{})
	require.True(t, errors.Is(err, context.Canceled), "%v", err)
	require.Equal(t, 6, saved.State.Checks)
	require.Equal(t, 2, saved.State.Streaks[RuleLatency])

	// JSON round trip, as through Temporal's heartbeat details.
	b, err := json.Marshal(saved)
	require.NoError(t, err)
	var back Progress
	require.NoError(t, json.Unmarshal(b, &back))
	w.OnCheck = nil
	res, err := w.Run(context.Background(), back)
	require.NoError(t, err)
	assert.Equal(t, ActionRollback, res.Decision.Action)
	assert.Equal(t, RuleLatency, res.Decision.Rule)
	assert.Equal(t, 7, res.State.Checks)
	assert.Equal(t, t0.Add(35*time.Minute), res.Decision.At)
}

func TestWatchCleanWindowAndSourceErrors(t *testing.T) {
	clock := &fakeClock{now: t0}
	failing := &fnSource{name: "prom", fn: func(n int) (Reading, error) {
		if n%2 == 0 {
			return Reading{}, errors.New("connection refused")
		}
		return Reading{Values: map[string]float64{"latency_ms@prom": 10, "error_rate_pct@prom": 1}}, nil
	}}
	b := Baseline{Values: map[string]float64{"latency_ms@prom": 10, "error_rate_pct@prom": 1}}
	var inconclusive int
	w := Watch{Sources: []Source{failing}, Evaluator: Evaluator{Rules: DefaultMatrix(Thresholds{}), InconclusiveLimit: 2}, Baseline: b,
		Interval: 10 * time.Minute, Deadline: t0.Add(24 * time.Hour), Now: clock.Now, Sleep: clock.Sleep,
		OnCheck: func(_ Sample, d Decision) {
			if d.Inconclusive {
				inconclusive++
			}
		}}
	res, err := w.Run(context.Background(), Progress{})
	require.NoError(t, err)
	assert.True(t, res.DeadlineReached, res.Decision.Reason)
	assert.Equal(t, 144, res.State.Checks)
	assert.Equal(t, 72, inconclusive, "every failed collection is inconclusive, alternating with good ones never reaches the limit of 2")
	assert.Equal(t, t0.Add(24*time.Hour), clock.Now())

	// Always failing: the gate opens after the limit.
	clock = &fakeClock{now: t0}
	dead := &fnSource{name: "prom", fn: func(int) (Reading, error) { return Reading{}, errors.New("connection refused") }}
	w.Sources, w.Now, w.Sleep, w.OnCheck = []Source{dead}, clock.Now, clock.Sleep, nil
	res, err = w.Run(context.Background(), Progress{})
	require.NoError(t, err)
	assert.Equal(t, ActionInconclusive, res.Decision.Action)
	assert.Equal(t, 2, res.State.Checks)
	assert.Contains(t, res.Decision.Reason, "source error: connection refused")
}
