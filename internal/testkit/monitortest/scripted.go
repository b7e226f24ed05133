// Package monitortest is a scripted monitor source for tests of the
// production watch: the watcher, evaluator and workflows are real, only the
// measurements are made up.
package monitortest

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/fkrollout/fkrollout/internal/monitor"
)

// Scripted is a monitor source whose n-th check (1-based; 0 primes)
// reads what script returns: the watcher, evaluator and workflow are real,
// only the measurements are made up.
type Scripted struct {
	// Script returns the reading of the n-th check.
	Script func(n int) monitor.Reading
	mu     sync.Mutex
	n      int
}

// Name is the source name inputs select it by.
func (s *Scripted) Name() string { return "monitorScripted" }

// Provides is every metric the monitor rules read.
func (s *Scripted) Provides() []string {
	return []string{monitor.MetricLatencyMS, monitor.MetricErrorRatePct, monitor.MetricFKViolations, monitor.MetricSmokeFailures}
}

// Collect returns the next scripted reading; the first call only primes.
func (s *Scripted) Collect(context.Context, json.RawMessage) (monitor.Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.n
	s.n++
	if n == 0 {
		return monitor.Reading{Cursor: json.RawMessage(`{}`)}, nil
	}
	return s.Script(n), nil
}

// Healthy is a check where nothing breaches.
func Healthy() monitor.Reading {
	return monitor.Reading{Values: map[string]float64{
		"latency_ms@pg/public.orders": 12, "error_rate_pct@pg/db": 1,
		"fk_violations@pg": 0, "smoke_failures@smoke": 0,
	}}
}

// WithValues is r with some values replaced.
func WithValues(r monitor.Reading, kv map[string]float64) monitor.Reading {
	for k, v := range kv {
		r.Values[k] = v
	}
	return r
}
