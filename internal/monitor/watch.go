package monitor

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Progress is the watcher's resumable position: the heartbeat detail of
// the watcher activity, so a retried attempt resumes counters and cursors.
type Progress struct {
	State     State     `json:"state"`
	Cursors   Cursors   `json:"cursors,omitempty"`
	LastCheck time.Time `json:"last_check,omitempty"`
	Last      Decision  `json:"last"`
	// ReportedAt is when the watcher last returned a checkpoint.
	ReportedAt time.Time `json:"reported_at,omitempty"`
	// Primed: the sources were primed; a source without a cursor (an
	// instant query) leaves Cursors empty, which must not prime again.
	Primed bool `json:"primed,omitempty"`
}

// Watch is the monitoring loop: every Interval it collects a sample,
// evaluates the matrix and stops at the first decision that is not
// "continue", or when the deadline passes.
type Watch struct {
	Sources   []Source
	Evaluator Evaluator
	Baseline  Baseline
	Interval  time.Duration
	Deadline  time.Time
	// Now and Sleep are the clock (tests run a day in milliseconds).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Beat is called at least every BeatEvery while waiting and after each
	// check (the activity heartbeat).
	Beat      func(Progress)
	BeatEvery time.Duration
	// OnCheck sees every check (logging, inconclusive notifications).
	OnCheck func(Sample, Decision)
	// ReportEvery, when set, ends the loop with a checkpoint (Checkpoint,
	// Progress) once this long has passed since the last one, so the
	// workflow sees every rule's figures during a long watch and can post
	// a digest; the caller resumes from Progress, cursors included.
	ReportEvery time.Duration
	// ReportOnChange ends the loop with a checkpoint when a rule changes
	// state (ok, breach, inconclusive) or sources: at the first check, then
	// at most once every ReportEvery/4, so a rule flapping between ok and
	// inconclusive does not add a stretch of history per check.
	ReportOnChange bool
}

// WatchResult is how the loop ended.
type WatchResult struct {
	Decision        Decision `json:"decision"`
	State           State    `json:"state"`
	DeadlineReached bool     `json:"deadline_reached"`
	// Checkpoint: nothing fired, the watch goes on from Progress (see
	// Watch.ReportEvery and ReportOnChange).
	Checkpoint bool `json:"checkpoint,omitempty"`
	// Progress is where the loop stopped, to resume from.
	Progress *Progress `json:"progress,omitempty"`
}

// Run watches from p (the zero Progress, or the one a heartbeat saved).
func (w Watch) Run(ctx context.Context, p Progress) (WatchResult, error) {
	if w.Interval <= 0 {
		return WatchResult{}, fmt.Errorf("watch: interval must be positive")
	}
	now, sleep := w.Now, w.Sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	beat := func() {
		if w.Beat != nil {
			w.Beat(p)
		}
	}
	every := w.BeatEvery
	if every <= 0 {
		every = 20 * time.Second
	}
	waitUntil := func(t time.Time) error {
		for {
			left := t.Sub(now())
			if left <= 0 {
				return nil
			}
			if err := sleep(ctx, min(left, every)); err != nil {
				return err
			}
			beat()
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if p.Cursors == nil && !p.Primed {
		p.Cursors = Prime(ctx, w.Sources)
	}
	p.Primed = true
	if p.LastCheck.IsZero() {
		p.LastCheck = now()
	}
	never := p.ReportedAt.IsZero()
	if never {
		p.ReportedAt = p.LastCheck
	}
	beat()
	for {
		next := p.LastCheck.Add(w.Interval)
		if next.After(w.Deadline) {
			if err := waitUntil(w.Deadline); err != nil {
				return WatchResult{}, err
			}
			saved := p
			return WatchResult{Decision: p.Last, State: p.State, DeadlineReached: true, Progress: &saved}, nil
		}
		if err := waitUntil(next); err != nil {
			return WatchResult{}, err
		}
		at := now()
		s, cursors := Collect(ctx, w.Sources, p.Cursors, at)
		d, st := w.Evaluator.Evaluate(p.State, w.Baseline, s)
		changed := RuleStatesChanged(p.Last.Rules, d.Rules)
		p.State, p.Cursors, p.LastCheck, p.Last = st, cursors, at, d
		beat()
		if w.OnCheck != nil {
			w.OnCheck(s, d)
		}
		if d.Action != ActionContinue {
			saved := p
			return WatchResult{Decision: d, State: st, Progress: &saved}, nil
		}
		onChange := w.ReportOnChange && changed && (never || !at.Before(p.ReportedAt.Add(w.ReportEvery/4)))
		if onChange || (w.ReportEvery > 0 && !at.Before(p.ReportedAt.Add(w.ReportEvery))) {
			never = false
			p.ReportedAt = at
			saved := p
			return WatchResult{Decision: d, State: st, Checkpoint: true, Progress: &saved}, nil
		}
	}
}

// RuleStatesChanged reports whether any rule changed state or sources
// between two checks (figures alone do not count).
func RuleStatesChanged(prev, next []RuleStatus) bool {
	if len(prev) != len(next) {
		return true
	}
	for i := range next {
		a, b := prev[i], next[i]
		if a.Rule != b.Rule || a.State != b.State || !slices.Equal(a.Sources, b.Sources) {
			return true
		}
	}
	return false
}
