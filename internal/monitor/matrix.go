// Package monitor is the 24-hour watch after a production deploy: the
// rollback decision matrix as data, a baseline captured before the
// deploy, samples taken every interval from PostgreSQL, Prometheus and HTTP
// smoke checks, and a pure Evaluator that turns (state, baseline, sample)
// into a decision: continue, investigate, rollback, or an inconclusive gate.
//
// The package knows nothing about Temporal: the watcher activity calls
// Collect and Evaluate; the workflow only sees the decisions. It links no
// client either (workflow code imports it): the sources that talk to
// PostgreSQL, Prometheus and HTTP are in monitor/sources.
package monitor

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Action is what a matrix row asks for.
type Action string

const (
	// ActionContinue: nothing fired; keep watching.
	ActionContinue Action = "continue"
	// ActionInvestigate opens a human gate (continue or rollback).
	ActionInvestigate Action = "investigate"
	// ActionRollback drops the rollout's constraints without asking.
	ActionRollback Action = "rollback"
	// ActionInconclusive is never a rule's action: the Evaluator returns it
	// when data has been missing for InconclusiveLimit consecutive checks,
	// and the caller opens a human gate. Missing data never rolls back and
	// never passes silently.
	ActionInconclusive Action = "inconclusive"
)

// Metric names the sources report. A series is a metric name optionally
// followed by "@" and a label naming where it comes from
// ("latency_ms@postgres/public.orders"); a rule on "latency_ms" looks at
// every series of that metric and fires on the worst.
const (
	// MetricLatencyMS is the mean latency of the tracked operations (ms).
	MetricLatencyMS = "latency_ms"
	// MetricErrorRatePct is the share of failed operations, in percent.
	MetricErrorRatePct = "error_rate_pct"
	// MetricThroughput is operations per second (reported, not a rule).
	MetricThroughput = "throughput_per_s"
	// MetricFKViolations counts SQLSTATE 23503 errors since the last sample.
	MetricFKViolations = "fk_violations"
	// MetricSmokeFailures counts failing smoke checks in this sample.
	MetricSmokeFailures = "smoke_failures"
)

// Basis says what a rule compares.
type Basis string

const (
	// BasisAbsolute compares the sampled value itself.
	BasisAbsolute Basis = ""
	// BasisBaseline compares the increase over the baseline
	// (sample - baseline), e.g. "latency degradation > 20 ms" or "error
	// rate + 5 percentage points".
	BasisBaseline Basis = "baseline"
	// BasisRelative compares the increase relative to the baseline, in
	// percent of it (100 × (sample - baseline) / baseline), e.g. "latency
	// + 30 %" or "error rate + 50 % of what it was". A zero baseline has no
	// relative increase: that series is missing data, never a pass.
	BasisRelative Basis = "relative"
)

// Rule is one row of the decision matrix.
type Rule struct {
	// Name identifies the row in decisions, notifications and reports.
	Name string `json:"name" yaml:"name"`
	// Metric is the metric name the row watches (see Metric* constants).
	Metric string `json:"metric" yaml:"metric"`
	// Op is ">", ">=", "<" or "<=".
	Op string `json:"op" yaml:"op"`
	// Threshold is compared with the figure by Op.
	Threshold float64 `json:"threshold" yaml:"threshold"`
	// Basis: absolute value, or increase over the baseline.
	Basis Basis `json:"basis,omitempty" yaml:"basis,omitempty"`
	// Over, when set ("1h"), compares the sum of the metric over the
	// samples of that trailing window (FK violations per hour) instead of
	// the latest sample.
	Over Duration `json:"over,omitempty" yaml:"over,omitempty"`
	// Action when the row fires.
	Action Action `json:"action" yaml:"action"`
	// Persist is how many consecutive checks must breach before the row
	// fires (anti-flapping; 0 or 1 = the first breach fires).
	Persist int `json:"persist,omitempty" yaml:"persist,omitempty"`
	// Unit is for humans ("ms", "%", "/h").
	Unit string `json:"unit,omitempty" yaml:"unit,omitempty"`
}

// Thresholds are the figures the default matrix is built from.
type Thresholds struct {
	// LatencyIncreaseMS rolls back above this degradation (default 20).
	LatencyIncreaseMS float64 `json:"latency_increase_ms,omitempty"`
	// ErrorRateIncreasePct rolls back above this increase in percentage
	// points of the error rate (default 5).
	ErrorRateIncreasePct float64 `json:"error_rate_increase_pct,omitempty"`
	// LatencyIncreasePct, when set, adds a rollback row on the latency
	// increase relative to the baseline, in percent (30: 30 % slower).
	LatencyIncreasePct float64 `json:"latency_increase_pct,omitempty"`
	// ErrorRateIncreaseRatio, when set, adds a rollback row on the error
	// rate relative to the baseline: 0.05 rolls back when the rate is more
	// than 5 % above what it was (1 % → above 1.05 %), where
	// ErrorRateIncreasePct counts percentage points (1 % → above 6 %).
	ErrorRateIncreaseRatio float64 `json:"error_rate_increase_ratio,omitempty"`
	// FKViolationsPerHour investigates above this count in any trailing
	// hour (default 1).
	FKViolationsPerHour float64 `json:"fk_violations_per_hour,omitempty"`
	// Persist is the consecutive breaches latency and error rate need
	// (default 3: a single slow interval is not a regression).
	Persist int `json:"persist,omitempty"`
	// SmokePersist is the consecutive failing checks before a smoke
	// failure rolls back (default 2: one flaky request is not an outage,
	// two in a row are).
	SmokePersist int `json:"smoke_persist,omitempty"`
}

// DefaultThresholds are the figures of the team's rollback decision matrix:
// more than 20 ms slower, 5 points more errors, or more than one FK violation
// an hour after the deploy.
func DefaultThresholds() Thresholds {
	return Thresholds{LatencyIncreaseMS: 20, ErrorRateIncreasePct: 5, FKViolationsPerHour: 1, Persist: 3, SmokePersist: 2}
}

// Rule names of the default matrix.
const (
	RuleLatency      = "latency-degradation"
	RuleErrorRate    = "error-rate-increase"
	RuleFKViolations = "fk-violations"
	RuleSmokeFailing = "smoke-tests-failing"
	// The relative rows, present only when their threshold is set.
	RuleLatencyRelative   = "latency-increase-relative"
	RuleErrorRateRelative = "error-rate-increase-relative"
	RuleSmokePassing      = "all-smoke-tests-pass"
)

// DefaultMatrix reproduces the team's rollback decision matrix; zero
// thresholds take DefaultThresholds' figures.
//
//	| Performance degradation >20ms | Rollback    |  latency_ms increase over baseline > 20, 3 checks in a row
//	| Error rate increase >5%       | Rollback    |  error_rate_pct increase (percentage points) > 5, 3 in a row
//	| FK violation errors >1/hour   | Investigate |  sum of fk_violations over the trailing hour > 1
//	| All smoke tests pass          | Continue    |  smoke_failures <= 0 (informational)
//	| Smoke tests failing (added)   | Rollback    |  smoke_failures > 0, 2 in a row
//	| Critical user complaints      | Rollback    |  not a metric: the rollout's manual rollback Update
//
// Smoke failures are not in the team's table, which treats passing
// smoke tests as the condition to continue, so we read a smoke test that
// keeps failing as the opposite: the deployment broke the application.
func DefaultMatrix(th Thresholds) []Rule {
	def := DefaultThresholds()
	if th.LatencyIncreaseMS <= 0 {
		th.LatencyIncreaseMS = def.LatencyIncreaseMS
	}
	if th.ErrorRateIncreasePct <= 0 {
		th.ErrorRateIncreasePct = def.ErrorRateIncreasePct
	}
	if th.FKViolationsPerHour <= 0 {
		th.FKViolationsPerHour = def.FKViolationsPerHour
	}
	if th.Persist <= 0 {
		th.Persist = def.Persist
	}
	if th.SmokePersist <= 0 {
		th.SmokePersist = def.SmokePersist
	}
	rules := []Rule{
		{Name: RuleLatency, Metric: MetricLatencyMS, Op: ">", Threshold: th.LatencyIncreaseMS, Basis: BasisBaseline, Action: ActionRollback, Persist: th.Persist, Unit: "ms"},
		{Name: RuleErrorRate, Metric: MetricErrorRatePct, Op: ">", Threshold: th.ErrorRateIncreasePct, Basis: BasisBaseline, Action: ActionRollback, Persist: th.Persist, Unit: "%"},
		{Name: RuleFKViolations, Metric: MetricFKViolations, Op: ">", Threshold: th.FKViolationsPerHour, Over: Duration(time.Hour), Action: ActionInvestigate, Persist: 1, Unit: "/h"},
		{Name: RuleSmokeFailing, Metric: MetricSmokeFailures, Op: ">", Threshold: 0, Action: ActionRollback, Persist: th.SmokePersist},
		{Name: RuleSmokePassing, Metric: MetricSmokeFailures, Op: "<=", Threshold: 0, Action: ActionContinue},
	}
	// Appended, so a matrix without them is the one older watches ran.
	if th.LatencyIncreasePct > 0 {
		rules = append(rules, Rule{Name: RuleLatencyRelative, Metric: MetricLatencyMS, Op: ">", Threshold: th.LatencyIncreasePct, Basis: BasisRelative,
			Action: ActionRollback, Persist: th.Persist, Unit: "%"})
	}
	if th.ErrorRateIncreaseRatio > 0 {
		rules = append(rules, Rule{Name: RuleErrorRateRelative, Metric: MetricErrorRatePct, Op: ">", Threshold: 100 * th.ErrorRateIncreaseRatio, Basis: BasisRelative,
			Action: ActionRollback, Persist: th.Persist, Unit: "%"})
	}
	return rules
}

// Validate names every threshold that cannot be meant: negative figures,
// and a ratio written as a percentage (5 for 5 %: a ratio is 0.05).
func (th Thresholds) Validate() error {
	var probs []string
	for _, f := range []struct {
		name string
		v    float64
	}{{"latency_increase_ms", th.LatencyIncreaseMS}, {"error_rate_increase_pct", th.ErrorRateIncreasePct},
		{"latency_increase_pct", th.LatencyIncreasePct}, {"error_rate_increase_ratio", th.ErrorRateIncreaseRatio},
		{"fk_violations_per_hour", th.FKViolationsPerHour}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			probs = append(probs, fmt.Sprintf("%s %g: want 0 (default) or a positive figure", f.name, f.v))
		}
	}
	if th.ErrorRateIncreaseRatio > 10 {
		probs = append(probs, fmt.Sprintf("error_rate_increase_ratio %g: a ratio of the baseline (0.05 = 5 %% more errors than before); for percentage points use error_rate_increase_pct", th.ErrorRateIncreaseRatio))
	}
	if th.ErrorRateIncreasePct > 100 {
		probs = append(probs, fmt.Sprintf("error_rate_increase_pct %g: percentage points of the error rate cannot exceed 100", th.ErrorRateIncreasePct))
	}
	if len(probs) > 0 {
		return fmt.Errorf("invalid thresholds: %s", strings.Join(probs, "; "))
	}
	return nil
}

// ValidateRules names every problem of a matrix at once.
func ValidateRules(rules []Rule) error {
	var probs []string
	seen := map[string]bool{}
	for i, r := range rules {
		where := fmt.Sprintf("rule %d (%s)", i, r.Name)
		if r.Name == "" {
			probs = append(probs, fmt.Sprintf("rule %d: no name", i))
		} else if seen[r.Name] {
			probs = append(probs, where+": duplicate name")
		}
		seen[r.Name] = true
		if r.Metric == "" {
			probs = append(probs, where+": no metric")
		}
		if _, ok := ops[r.Op]; !ok {
			probs = append(probs, fmt.Sprintf("%s: op %q (want >, >=, <, <=)", where, r.Op))
		}
		switch r.Action {
		case ActionContinue, ActionInvestigate, ActionRollback:
		default:
			probs = append(probs, fmt.Sprintf("%s: action %q (want rollback, investigate or continue)", where, r.Action))
		}
		if r.Basis != BasisAbsolute && r.Basis != BasisBaseline && r.Basis != BasisRelative {
			probs = append(probs, fmt.Sprintf("%s: basis %q (want empty, baseline or relative)", where, r.Basis))
		}
		if r.Basis != BasisAbsolute && r.Over > 0 {
			probs = append(probs, where+": a windowed rule (over) sums the samples; it has no baseline basis")
		}
		if r.Persist < 0 || r.Over < 0 {
			probs = append(probs, where+": negative persist or window")
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("invalid decision matrix: %s", strings.Join(probs, "; "))
	}
	return nil
}

var ops = map[string]func(a, b float64) bool{
	">":  func(a, b float64) bool { return a > b },
	">=": func(a, b float64) bool { return a >= b },
	"<":  func(a, b float64) bool { return a < b },
	"<=": func(a, b float64) bool { return a <= b },
}

// Duration is a time.Duration that reads and writes as "1h" in JSON/YAML.
type Duration time.Duration

// MarshalText writes the Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText reads a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", string(b), err)
	}
	*d = Duration(v)
	return nil
}
