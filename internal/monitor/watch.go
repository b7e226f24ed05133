package monitor

import (
	"context"
	"fmt"
	"time"
)

// Progress is the watcher's resumable position: the heartbeat detail of
// the watcher activity, so a retried attempt resumes counters and cursors.
type Progress struct {
	State     State     `json:"state"`
	Cursors   Cursors   `json:"cursors,omitempty"`
	LastCheck time.Time `json:"last_check,omitempty"`
	Last      Decision  `json:"last"`
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
}

// WatchResult is how the loop ended.
type WatchResult struct {
	Decision        Decision `json:"decision"`
	State           State    `json:"state"`
	DeadlineReached bool     `json:"deadline_reached"`
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
	if p.Cursors == nil {
		p.Cursors = Prime(ctx, w.Sources)
	}
	if p.LastCheck.IsZero() {
		p.LastCheck = now()
	}
	beat()
	for {
		next := p.LastCheck.Add(w.Interval)
		if next.After(w.Deadline) {
			if err := waitUntil(w.Deadline); err != nil {
				return WatchResult{}, err
			}
			return WatchResult{Decision: p.Last, State: p.State, DeadlineReached: true}, nil
		}
		if err := waitUntil(next); err != nil {
			return WatchResult{}, err
		}
		at := now()
		s, cursors := Collect(ctx, w.Sources, p.Cursors, at)
		d, st := w.Evaluator.Evaluate(p.State, w.Baseline, s)
		p.State, p.Cursors, p.LastCheck, p.Last = st, cursors, at, d
		beat()
		if w.OnCheck != nil {
			w.OnCheck(s, d)
		}
		if d.Action != ActionContinue {
			return WatchResult{Decision: d, State: st}, nil
		}
	}
}
