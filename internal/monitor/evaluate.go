package monitor

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// Baseline is what the system looked like before the deploy: one value per
// series (latency, error rate, throughput of the tracked operations and
// tables), measured over a baseline period.
type Baseline struct {
	CapturedAt time.Time          `json:"captured_at"`
	Period     Duration           `json:"period,omitempty"`
	Values     map[string]float64 `json:"values"`
	// Missing names series the sources could not measure, with why.
	Missing map[string]string `json:"missing,omitempty"`
}

// Sample is one interval's measurement.
type Sample struct {
	At time.Time `json:"at"`
	// Values by series ("metric" or "metric@source/label").
	Values map[string]float64 `json:"values"`
	// Missing by metric or series: the source is configured to measure it
	// but has no data or failed, with the reason. Missing data makes a
	// check inconclusive.
	Missing map[string]string `json:"missing,omitempty"`
	// Notes are details for humans (which smoke check failed and how).
	Notes []string `json:"notes,omitempty"`
	// Baseline, by series, is a baseline matched to this sample's time
	// (the same hour of previous days, from a Prometheus source with
	// baseline_days); a rule on the baseline prefers it to the baseline
	// captured before the deploy.
	Baseline map[string]float64 `json:"baseline,omitempty"`
	// BaselineFrom says where Baseline comes from, by series ("mean of the
	// same time on the 7 previous days").
	BaselineFrom map[string]string `json:"baseline_from,omitempty"`
}

// State is everything the Evaluator remembers between checks. It is plain
// data so the watcher can heartbeat it and a retry, or the next monitor
// run after an investigate gate, resumes the counters.
type State struct {
	Checks int `json:"checks"`
	// Streaks counts consecutive breaching checks per rule name.
	Streaks map[string]int `json:"streaks,omitempty"`
	// InconclusiveStreak counts consecutive checks with missing data.
	InconclusiveStreak int `json:"inconclusive_streak,omitempty"`
	// Window holds per-check totals of the metrics windowed rules sum
	// (Rule.Over), pruned to the longest window.
	Window []Point `json:"window,omitempty"`
}

// Point is one check's totals for windowed metrics.
type Point struct {
	At     time.Time          `json:"at"`
	Totals map[string]float64 `json:"totals"`
}

// Decision is the outcome of one check.
type Decision struct {
	Action Action    `json:"action"`
	Rule   string    `json:"rule,omitempty"`
	At     time.Time `json:"at"`
	// Figures by key: "<rule>" is the rule's worst figure, "<rule>.threshold"
	// its threshold; for the rule that fired also "sample:<series>" and
	// "baseline:<series>".
	Figures map[string]float64 `json:"figures,omitempty"`
	// Details lists each rule's worst series (every rule with data).
	Details []Detail `json:"details,omitempty"`
	Reason  string   `json:"reason"`
	// Inconclusive is set when this check lacked data for some rule, even
	// when the action is still continue (below the limit).
	Inconclusive bool              `json:"inconclusive,omitempty"`
	Missing      map[string]string `json:"missing,omitempty"`
	// Uncovered lists rules no configured source measures.
	Uncovered []string `json:"uncovered,omitempty"`
	// Rules is every rule's state in this check, in matrix order: where
	// its data came from, its last figure, ok, breach or inconclusive.
	Rules []RuleStatus `json:"rules,omitempty"`
}

// Rule states in RuleStatus.
const (
	// RuleOK: the rule had data and did not breach.
	RuleOK = "ok"
	// RuleBreach: the rule breached (it fires once persistent).
	RuleBreach = "breach"
	// RuleInconclusive: the rule had no data this check, or no configured
	// source measures its metric at all. Never a pass.
	RuleInconclusive = "inconclusive"
)

// RuleStatus is one rule in one check.
type RuleStatus struct {
	Rule   string `json:"rule"`
	Metric string `json:"metric"`
	Action Action `json:"action"`
	// Sources are the monitor sources that measured (or failed to measure)
	// the metric; empty when none is configured for it.
	Sources []string `json:"sources,omitempty"`
	// Series is the worst series, Value its figure (the increase for a
	// baseline rule), Sample and Baseline what it was computed from.
	Series    string  `json:"series,omitempty"`
	Value     float64 `json:"value"`
	Sample    float64 `json:"sample,omitempty"`
	Baseline  float64 `json:"baseline,omitempty"`
	Threshold float64 `json:"threshold"`
	Op        string  `json:"op"`
	Unit      string  `json:"unit,omitempty"`
	// BaselineFrom says which baseline the figure was compared with.
	BaselineFrom string `json:"baseline_from,omitempty"`
	State        string `json:"state"`
	// Reason says why the rule is inconclusive.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// HasData reports whether the rule produced a figure.
func (r RuleStatus) HasData() bool { return r.Series != "" }

// Detail is one rule's worst figure in a check.
type Detail struct {
	Rule      string  `json:"rule"`
	Series    string  `json:"series"`
	Value     float64 `json:"value"`
	Sample    float64 `json:"sample"`
	Baseline  float64 `json:"baseline,omitempty"`
	Threshold float64 `json:"threshold"`
	Op        string  `json:"op"`
	Unit      string  `json:"unit,omitempty"`
	Breached  bool    `json:"breached"`
	Streak    int     `json:"streak"`
	Persist   int     `json:"persist"`
	// BaselineFrom says where a time-matched baseline came from (empty:
	// the baseline captured before the deploy).
	BaselineFrom string `json:"baseline_from,omitempty"`
}

// NotifyFigures converts the details to notification figures, the rule
// that fired first.
func (d Decision) NotifyFigures() []notify.Figure {
	out := make([]notify.Figure, 0, len(d.Details))
	for _, x := range d.Details {
		f := notify.Figure{Name: x.Rule + " " + x.Series, Value: round(x.Value), Threshold: x.Threshold, Unit: x.Unit}
		if x.Rule == d.Rule {
			out = append([]notify.Figure{f}, out...)
		} else {
			out = append(out, f)
		}
	}
	return out
}

// DefaultInconclusiveLimit is how many consecutive inconclusive checks open
// the human gate.
const DefaultInconclusiveLimit = 3

// Evaluator applies a matrix. It is pure: the same state, baseline and
// sample always give the same decision and new state.
type Evaluator struct {
	Rules []Rule `json:"rules"`
	// InconclusiveLimit consecutive checks with missing data open a gate
	// (default DefaultInconclusiveLimit).
	InconclusiveLimit int `json:"inconclusive_limit,omitempty"`
	// Hold names investigate rules whose gate is already open (and
	// HoldInconclusive for an open inconclusive gate): they are still
	// evaluated, counted and reported as breaching, but do not end the
	// watch again; rollback rules are never held.
	Hold []string `json:"hold,omitempty"`
}

// HoldInconclusive in Evaluator.Hold holds the inconclusive gate.
const HoldInconclusive = "inconclusive"

func (e Evaluator) held(name string) bool { return slices.Contains(e.Hold, name) }

type ruleResult struct {
	rule    Rule
	noData  string // reason, when the rule could not be evaluated
	covered bool
	worst   Detail
	breach  bool
}

// Evaluate decides one check. A fired rule's streak restarts at zero in
// the new state, so a human who answers "continue" at an investigate gate
// is not asked again by the very next check; an inconclusive gate likewise
// restarts the inconclusive streak.
func (e Evaluator) Evaluate(st State, base Baseline, s Sample) (Decision, State) {
	limit := e.InconclusiveLimit
	if limit <= 0 {
		limit = DefaultInconclusiveLimit
	}
	next := State{Checks: st.Checks + 1, Streaks: map[string]int{}, InconclusiveStreak: st.InconclusiveStreak}
	maps.Copy(next.Streaks, st.Streaks)
	next.Window = windowed(e.Rules, st.Window, s)

	d := Decision{Action: ActionContinue, At: s.At, Figures: map[string]float64{}}
	var results []ruleResult
	for _, r := range e.Rules {
		rr := e.evalRule(r, base, s, next.Window)
		d.Rules = append(d.Rules, ruleStatus(r, rr, s))
		if !rr.covered {
			d.Uncovered = append(d.Uncovered, r.Name)
			continue
		}
		if r.Action != ActionContinue {
			switch {
			case rr.noData != "":
				// Missing data neither breaks nor extends a streak.
			case rr.breach:
				next.Streaks[r.Name]++
			default:
				delete(next.Streaks, r.Name)
			}
			rr.worst.Streak = next.Streaks[r.Name]
		}
		if rr.noData != "" {
			if d.Missing == nil {
				d.Missing = map[string]string{}
			}
			d.Missing[r.Name] = rr.noData
		} else {
			d.Figures[r.Name] = round(rr.worst.Value)
			d.Figures[r.Name+".threshold"] = r.Threshold
			d.Details = append(d.Details, rr.worst)
		}
		results = append(results, rr)
	}

	fired := func(action Action) *ruleResult {
		for i := range results {
			rr := &results[i]
			if rr.rule.Action == action && rr.noData == "" && rr.breach && next.Streaks[rr.rule.Name] >= max(1, rr.rule.Persist) &&
				(action == ActionRollback || !e.held(rr.rule.Name)) {
				return rr
			}
		}
		return nil
	}
	rr := fired(ActionRollback)
	if rr == nil {
		rr = fired(ActionInvestigate)
	}
	if rr != nil {
		w := rr.worst
		d.Action, d.Rule = rr.rule.Action, rr.rule.Name
		d.Figures["sample:"+w.Series] = round(w.Sample)
		if rr.rule.Basis == BasisBaseline || rr.rule.Basis == BasisRelative {
			d.Figures["baseline:"+w.Series] = round(w.Baseline)
		}
		d.Reason = fmt.Sprintf("%s → %s: %s for %d consecutive check(s)", rr.rule.Name, rr.rule.Action, describe(rr.rule, w), w.Streak)
		delete(next.Streaks, rr.rule.Name)
		if rr.rule.Over > 0 {
			// What fired has been reported: a windowed rule starts counting
			// again, or a human's "continue" would be asked again at once.
			for i := range next.Window {
				next.Window[i].Totals = maps.Clone(next.Window[i].Totals)
				delete(next.Window[i].Totals, rr.rule.Metric)
			}
		}
		if len(d.Missing) > 0 {
			d.Inconclusive = true
		}
		return d, next
	}

	if len(d.Missing) > 0 {
		d.Inconclusive = true
		next.InconclusiveStreak++
		why := missingText(d.Missing)
		if next.InconclusiveStreak >= limit && !e.held(HoldInconclusive) {
			d.Action = ActionInconclusive
			d.Reason = fmt.Sprintf("inconclusive for %d consecutive checks (limit %d): %s; a human must decide", next.InconclusiveStreak, limit, why)
			next.InconclusiveStreak = 0
			return d, next
		}
		d.Reason = fmt.Sprintf("inconclusive check %d of %d before a gate: %s", next.InconclusiveStreak, limit, why)
		if next.InconclusiveStreak >= limit {
			d.Reason = fmt.Sprintf("inconclusive for %d consecutive checks: %s", next.InconclusiveStreak, why)
		}
		if len(e.Hold) > 0 {
			d.Reason += "; held while their gate is open: " + strings.Join(e.Hold, ", ")
		}
		return d, next
	}
	next.InconclusiveStreak = 0
	d.Reason = "no rule fired"
	if pending := pendingText(results, next); pending != "" {
		d.Reason += "; breaching but not yet persistent: " + pending
	}
	if len(e.Hold) > 0 {
		d.Reason += "; held while their gate is open: " + strings.Join(e.Hold, ", ")
	}
	return d, next
}

// Release forgets what held rules counted while their gate was open (the
// person who chose "continue" saw it): their streaks, their windowed
// totals, and the inconclusive streak, so only what happens next counts.
func Release(st State, rules []Rule, names []string) State {
	next := st
	next.Streaks = maps.Clone(st.Streaks)
	var metrics []string
	for _, r := range rules {
		if slices.Contains(names, r.Name) {
			delete(next.Streaks, r.Name)
			if r.Over > 0 {
				metrics = append(metrics, r.Metric)
			}
		}
	}
	if slices.Contains(names, HoldInconclusive) {
		next.InconclusiveStreak = 0
	}
	if len(metrics) > 0 {
		next.Window = slices.Clone(st.Window)
		for i := range next.Window {
			next.Window[i].Totals = maps.Clone(next.Window[i].Totals)
			for _, m := range metrics {
				delete(next.Window[i].Totals, m)
			}
		}
	}
	return next
}

func (e Evaluator) evalRule(r Rule, base Baseline, s Sample, window []Point) ruleResult {
	rr := ruleResult{rule: r}
	series := seriesOf(s.Values, r.Metric)
	missing := missingFor(s.Missing, r.Metric)
	if len(series) == 0 {
		if missing == "" {
			return rr // no source measures this metric
		}
		rr.covered, rr.noData = true, missing
		return rr
	}
	rr.covered = true
	if missing != "" {
		// Part of the metric is missing (one source of two failed): judge
		// what we have, but the check still counts as inconclusive.
		rr.noData = missing
	}
	cmp := ops[r.Op]
	pick := func(c Detail) {
		better := c.Value > rr.worst.Value
		if r.Op == "<" || r.Op == "<=" {
			better = c.Value < rr.worst.Value
		}
		if rr.worst.Series == "" || (c.Breached && !rr.worst.Breached) || (c.Breached == rr.worst.Breached && better) {
			rr.worst = c
		}
	}
	if r.Over > 0 {
		total := 0.0
		for _, p := range window {
			if !p.At.After(s.At.Add(-time.Duration(r.Over))) {
				continue
			}
			total += p.Totals[r.Metric]
		}
		c := Detail{Rule: r.Name, Series: r.Metric + " over " + time.Duration(r.Over).String(), Value: total, Sample: total, Threshold: r.Threshold, Op: r.Op, Unit: r.Unit, Persist: r.Persist}
		c.Breached = cmp(c.Value, r.Threshold)
		pick(c)
	} else {
		var noBase, zeroBase []string
		for _, name := range series {
			v := s.Values[name]
			c := Detail{Rule: r.Name, Series: name, Value: v, Sample: v, Threshold: r.Threshold, Op: r.Op, Unit: r.Unit, Persist: r.Persist}
			if r.Basis == BasisBaseline || r.Basis == BasisRelative {
				b, ok := s.Baseline[name]
				if ok {
					c.BaselineFrom = s.BaselineFrom[name]
				} else {
					b, ok = base.Values[name]
				}
				if !ok {
					noBase = append(noBase, name)
					continue
				}
				c.Baseline, c.Value = b, v-b
				if r.Basis == BasisRelative {
					if b <= 0 {
						zeroBase = append(zeroBase, name)
						continue
					}
					c.Value = 100 * (v - b) / b
				}
			}
			c.Breached = cmp(c.Value, r.Threshold)
			pick(c)
		}
		var whys []string
		if rr.noData != "" {
			whys = append(whys, rr.noData)
		}
		if len(noBase) > 0 {
			whys = append(whys, "no baseline for "+strings.Join(noBase, ", "))
		}
		if len(zeroBase) > 0 {
			whys = append(whys, "baseline 0 for "+strings.Join(zeroBase, ", ")+": no relative increase exists (the absolute row still applies)")
		}
		rr.noData = strings.Join(whys, "; ")
		if rr.worst.Series == "" {
			return rr
		}
	}
	rr.breach = rr.worst.Breached
	if rr.noData != "" && rr.breach {
		// A breach seen in the data we have still counts: missing data must
		// not hide a regression that is measured elsewhere.
		rr.noData = ""
	}
	return rr
}

// windowed appends this sample's totals of the windowed metrics and prunes
// points older than the longest window.
func windowed(rules []Rule, prev []Point, s Sample) []Point {
	var longest time.Duration
	totals := map[string]float64{}
	for _, r := range rules {
		if r.Over <= 0 {
			continue
		}
		longest = max(longest, time.Duration(r.Over))
		for _, name := range seriesOf(s.Values, r.Metric) {
			totals[r.Metric] += s.Values[name]
		}
	}
	if longest == 0 {
		return nil
	}
	out := make([]Point, 0, len(prev)+1)
	for _, p := range prev {
		if p.At.After(s.At.Add(-longest)) && p.At.Before(s.At) {
			out = append(out, p)
		}
	}
	return append(out, Point{At: s.At, Totals: totals})
}

// seriesOf returns the series of a metric, sorted: the metric itself and
// every "metric@label".
func seriesOf(values map[string]float64, metric string) []string {
	var out []string
	for k := range values {
		if k == metric || strings.HasPrefix(k, metric+"@") {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func missingFor(missing map[string]string, metric string) string {
	var reasons []string
	for _, k := range slices.Sorted(maps.Keys(missing)) {
		if k == metric || strings.HasPrefix(k, metric+"@") {
			reasons = append(reasons, k+": "+missing[k])
		}
	}
	return strings.Join(reasons, "; ")
}

func describe(r Rule, w Detail) string {
	unit := r.Unit
	if r.Basis == BasisRelative {
		return fmt.Sprintf("%s rose by %s%% of its baseline (baseline %s, now %s) %s %s%%", w.Series, formatFigure(w.Value), formatFigure(w.Baseline), formatFigure(w.Sample), r.Op, formatFigure(r.Threshold))
	}
	if r.Basis == BasisBaseline {
		return fmt.Sprintf("%s rose by %s%s (baseline %s, now %s) %s %s%s", w.Series, formatFigure(w.Value), unit, formatFigure(w.Baseline), formatFigure(w.Sample), r.Op, formatFigure(r.Threshold), unit)
	}
	return fmt.Sprintf("%s is %s%s %s %s%s", w.Series, formatFigure(w.Value), unit, r.Op, formatFigure(r.Threshold), unit)
}

func pendingText(results []ruleResult, st State) string {
	var parts []string
	for _, rr := range results {
		if rr.breach && rr.rule.Action != ActionContinue {
			parts = append(parts, fmt.Sprintf("%s %d/%d", rr.rule.Name, st.Streaks[rr.rule.Name], max(1, rr.rule.Persist)))
		}
	}
	return strings.Join(parts, ", ")
}

func missingText(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+" ("+m[k]+")")
	}
	return "no data for " + strings.Join(parts, ", ")
}

func formatFigure(f float64) string { return fmt.Sprintf("%.4g", f) }

func round(f float64) float64 { return math.Round(f*1000) / 1000 }

// ruleStatus is one rule's line in a check: which sources measured its
// metric (series "metric@source/label" and missing keys name them), its
// worst figure and its state.
func ruleStatus(r Rule, rr ruleResult, s Sample) RuleStatus {
	st := RuleStatus{Rule: r.Name, Metric: r.Metric, Action: r.Action, Threshold: r.Threshold, Op: r.Op, Unit: r.Unit, At: s.At}
	seen := map[string]bool{}
	add := func(key string) {
		if key != r.Metric && !strings.HasPrefix(key, r.Metric+"@") {
			return
		}
		_, rest, _ := strings.Cut(key, "@")
		src, _, _ := strings.Cut(rest, "/")
		if src != "" && !seen[src] {
			seen[src] = true
			st.Sources = append(st.Sources, src)
		}
	}
	for k := range s.Values {
		add(k)
	}
	for k := range s.Missing {
		add(k)
	}
	slices.Sort(st.Sources)
	if w := rr.worst; w.Series != "" {
		st.Series, st.Value, st.Sample, st.Baseline, st.BaselineFrom = w.Series, round(w.Value), round(w.Sample), round(w.Baseline), w.BaselineFrom
	}
	// A continue row (all smoke tests pass) is ok when its condition holds.
	bad := rr.breach != (r.Action == ActionContinue)
	switch {
	case !rr.covered:
		st.State = RuleInconclusive
		st.Reason = "no configured source measures " + r.Metric
	case rr.noData != "" && !rr.breach:
		st.State, st.Reason = RuleInconclusive, rr.noData
	case st.Series != "" && bad:
		st.State = RuleBreach
	case st.Series == "":
		st.State, st.Reason = RuleInconclusive, "no figure"
	default:
		st.State = RuleOK
	}
	return st
}
