package rollout

// Bounded copies of the status. A plan of hundreds of constraints with
// orphans makes the whole Status megabytes (per constraint and environment:
// its state, audit figures with sample rows, DDL results, behaviour cases);
// Temporal refuses a payload over 2 MB and every result is kept in the
// history (a fleet keeps each child's). The status query and the result
// therefore carry bounded copies: every count, the first rows of each
// per-constraint list, a budget of sample rows, and what was left out.
// The constraints query pages through the rest.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// QueryConstraints pages through the constraints with their audit figures
// (ConstraintsQuery in, ConstraintsPage out).
const QueryConstraints = "constraints"

// boundedVersion marks histories whose result is the bounded copy of the
// status (StatusLimitsResult), whose audit samples are capped when they
// arrive and whose gates and notifications carry capped lists.
const boundedVersion = "scale-bounded-payloads"

// Limits bound one copy of the status.
type Limits struct {
	// Constraints is how many constraint rows are listed (the rest: the
	// constraints query).
	Constraints int
	// Rows is how many rows each per-constraint list of an environment
	// report keeps (audit figures, applied, validated, remediations,
	// behaviour results, rolled back).
	Rows int
	// Samples is the budget of orphan sample rows over the whole copy;
	// SamplesPerFK the most one constraint shows.
	Samples, SamplesPerFK int
	// Cases: behaviour cases of passed constraints are kept (failed
	// constraints always keep theirs).
	Cases bool
	// Timeline is how many of the newest timeline entries are kept.
	Timeline int
	// Text is the longest gate summary kept, in bytes.
	Text int
	// GateRows is how many constraints a gate's notification detail keeps.
	GateRows int
	// Gates is how many of the newest closed gates (and decisions) are
	// kept: a gate whose timeout retries opens one per round.
	Gates int
}

// StatusLimitsQuery bound the status query: enough for a person or a
// dashboard, well under Temporal's 2 MB payload limit at any plan size.
var StatusLimitsQuery = Limits{Constraints: 100, Rows: 100, Samples: 200, SamplesPerFK: 5, Cases: true, Timeline: maxTimeline, Text: 4096, GateRows: gateRows, Gates: 50}

// StatusLimitsResult bound the workflow's result: a summary with the first
// rows; it is kept in the history (and in a fleet's, per child).
var StatusLimitsResult = Limits{Constraints: 20, Rows: 10, Samples: 40, SamplesPerFK: 3, Timeline: 50, Text: 1024, GateRows: 5, Gates: 20}

// Source caps: what the workflow keeps of an audit (per constraint, and in
// total over one audit) and what a gate lists.
const (
	AuditSamplesPerFK = 5
	AuditSamplesTotal = 1000
	// gateRows is how many constraints a gate's summary and notification
	// list one by one; the rest are counted.
	gateRows = 25
	// gateSamples is how many sample rows a gate shows per constraint.
	gateSamples = 3
	// promotionTests is how many behaviour test lines a promotion gate
	// lists (failed ones first).
	promotionTests = 50
)

// Totals are the rollout in counts: what the fleet keeps of a child and
// what a bounded copy always carries in full.
type Totals struct {
	Constraints int `json:"constraints"`
	// Counts are, per environment, how many constraints are in each state.
	Counts map[string]map[ConstraintState]int `json:"counts"`
	// Orphans are, per environment, the orphans the last audit counted.
	Orphans map[string]int64 `json:"orphans,omitempty"`
	Gates   int              `json:"gates"`
}

// Truncation says what a bounded copy leaves out.
type Truncation struct {
	// Constraints not listed in Status.Constraints.
	Constraints int `json:"constraints,omitempty"`
	// Rows of environment reports not listed (all lists together).
	Rows int `json:"rows,omitempty"`
	// Samples are orphan sample rows not shown.
	Samples int `json:"samples,omitempty"`
	// Cases are behaviour test cases not shown (of passed constraints).
	Cases int `json:"cases,omitempty"`
	// Gates and Decisions are the oldest closed gates and decisions not
	// listed (open gates are always listed).
	Gates     int `json:"gates,omitempty"`
	Decisions int `json:"decisions,omitempty"`
	// Hint says how to see the rest.
	Hint string `json:"hint,omitempty"`
}

// Empty reports whether nothing was left out.
func (t Truncation) Empty() bool {
	return t.Constraints+t.Rows+t.Samples+t.Cases+t.Gates+t.Decisions == 0
}

// ComputeTotals counts s.
func (s *Status) ComputeTotals() *Totals {
	sum := &Totals{Constraints: len(s.Constraints), Counts: map[string]map[ConstraintState]int{}, Gates: len(s.Gates)}
	envs := slices.Clone(s.EnvironmentOrder)
	//workflowcheck:ignore (fills a map: order-free)
	for env := range s.Environments {
		if !slices.Contains(envs, env) {
			envs = append(envs, env)
		}
	}
	for _, env := range envs {
		if c := s.Counts(env); len(c) > 0 {
			sum.Counts[env] = c
		}
		if r, ok := s.Environments[env]; ok && len(r.LastAudit) > 0 {
			if sum.Orphans == nil {
				sum.Orphans = map[string]int64{}
			}
			sum.Orphans[env] = totalOrphans(r.LastAudit)
		}
	}
	return sum
}

// Planned is how many constraints the rollout planned (the totals' count
// in a bounded copy).
func (s *Status) Planned() int {
	if s.Totals != nil {
		return s.Totals.Constraints
	}
	return len(s.Constraints)
}

// Bounded is a copy of s within lim: the totals, the first rows
// of every list, samples within the budget, and what was left out. s is not
// changed. A copy already bounded is bounded again, never grown.
func (s *Status) Bounded(lim Limits) *Status {
	out := *s
	if out.Totals == nil {
		out.Totals = s.ComputeTotals()
	}
	var tr Truncation
	if s.Truncated != nil {
		tr = *s.Truncated
	}
	budget := lim.Samples
	samples := func(in []string) []string {
		n := min(len(in), lim.SamplesPerFK, max(budget, 0))
		budget -= n
		tr.Samples += len(in) - n
		if n == 0 {
			return nil
		}
		return slices.Clone(in[:n])
	}
	if n := len(s.Constraints); n > lim.Constraints {
		out.Constraints = slices.Clone(s.Constraints[:lim.Constraints])
		tr.Constraints += n - lim.Constraints
	}
	out.Environments = make(map[string]EnvReport, len(s.Environments))
	for _, env := range sortedKeys(s.Environments) {
		out.Environments[env] = boundReport(s.Environments[env], lim, &tr, samples)
	}
	bg := func(gs []approval.Gate) []approval.Gate {
		res := make([]approval.Gate, len(gs))
		for i, g := range gs {
			res[i] = boundGate(g, lim, samples)
		}
		return res
	}
	out.OpenGates, out.Gates = bg(s.OpenGates), bg(newestGates(s.Gates, lim.Gates, &tr))
	if n := len(s.Decisions); n > lim.Gates {
		out.Decisions = slices.Clone(s.Decisions[n-lim.Gates:])
		tr.Decisions += n - lim.Gates
	}
	if n := len(s.Timeline); n > lim.Timeline {
		out.Timeline = slices.Clone(s.Timeline[n-lim.Timeline:])
		out.TimelineDropped += n - lim.Timeline
	}
	if !tr.Empty() {
		tr.Hint = fmt.Sprintf("counts are complete (totals); page through every constraint with the %q query (fkrollout status %s --constraints)", QueryConstraints, s.RolloutID)
		out.Truncated = &tr
	}
	return &out
}

func boundReport(r EnvReport, lim Limits, tr *Truncation, samples func([]string) []string) EnvReport {
	figs := func(in []AuditFigure) []AuditFigure {
		if in == nil {
			return nil
		}
		n := min(len(in), lim.Rows)
		tr.Rows += len(in) - n
		out := slices.Clone(in[:n])
		for i := range out {
			out[i].Samples = samples(out[i].Samples)
		}
		for _, f := range in[n:] {
			tr.Samples += len(f.Samples)
		}
		return out
	}
	r.FirstAudit, r.LastAudit = figs(r.FirstAudit), figs(r.LastAudit)
	r.Applied = firstRows(r.Applied, lim.Rows, tr)
	r.Validated = firstRows(r.Validated, lim.Rows, tr)
	r.RolledBack = firstRows(r.RolledBack, lim.Rows, tr)
	r.OrphanExports = firstRows(r.OrphanExports, lim.Rows, tr)
	r.Expectations = firstRows(r.Expectations, lim.Rows, tr)
	r.Remediations = firstRows(r.Remediations, lim.Rows, tr)
	if r.Behaviour != nil {
		// Failed constraints first: they are what a reader looks for.
		beh := slices.Clone(r.Behaviour)
		slices.SortStableFunc(beh, func(a, b BehaviourResult) int {
			switch {
			case a.Passed == b.Passed:
				return 0
			case !a.Passed:
				return -1
			}
			return 1
		})
		beh = firstRows(beh, lim.Rows, tr)
		for i := range beh {
			if beh[i].Passed && !lim.Cases && len(beh[i].Cases) > 0 {
				tr.Cases += len(beh[i].Cases)
				beh[i].Cases = nil
			}
		}
		r.Behaviour = beh
	}
	if r.StatsBefore != nil {
		sb := *r.StatsBefore
		sb.Snapshot = nil // opaque to readers; the workflow keeps its own copy
		r.StatsBefore = &sb
	}
	if r.StatsAfter != nil {
		sa := *r.StatsAfter
		sa.Snapshot = nil
		r.StatsAfter = &sa
	}
	return r
}

// newestGates keeps every open gate and the newest n closed ones, in
// their order, and counts the rest in tr.
func newestGates(gs []approval.Gate, n int, tr *Truncation) []approval.Gate {
	closed := 0
	for _, g := range gs {
		if g.Status != approval.GateOpen {
			closed++
		}
	}
	if closed <= n {
		return gs
	}
	skip := closed - n
	tr.Gates += skip
	out := make([]approval.Gate, 0, len(gs)-skip)
	for _, g := range gs {
		if g.Status != approval.GateOpen && skip > 0 {
			skip--
			continue
		}
		out = append(out, g)
	}
	return out
}

// firstRows keeps the first n rows of in and counts the rest in tr.
func firstRows[T any](in []T, n int, tr *Truncation) []T {
	if len(in) <= n {
		return in
	}
	tr.Rows += len(in) - n
	return slices.Clone(in[:n])
}

// boundGate shortens a gate's summary and its notification detail (the
// constraints a remediation gate lists, their samples).
func boundGate(g approval.Gate, lim Limits, samples func([]string) []string) approval.Gate {
	g.Summary = clip(g.Summary, lim.Text)
	if g.Detail == nil {
		return g
	}
	d := *g.Detail
	d.Summary = clip(d.Summary, lim.Text)
	d.Block = clip(d.Block, lim.Text)
	if d.Remediation != nil {
		rem := *d.Remediation
		rem.FKs = slices.Clone(rem.FKs[:min(len(rem.FKs), lim.GateRows)])
		for i := range rem.FKs {
			rem.FKs[i].Samples = samples(rem.FKs[i].Samples)
		}
		d.Remediation = &rem
	}
	if d.Promotion != nil {
		p := *d.Promotion
		p.Tests = capTests(p.Tests)
		if len(p.Tests) > lim.GateRows {
			p.Tests = append(slices.Clone(p.Tests[:lim.GateRows]), notify.TestResult{Name: fmt.Sprintf("… %d more tests not listed", len(p.Tests)-lim.GateRows)})
		}
		p.Validated = capNames(p.Validated, lim.GateRows)
		p.NotValid = capNames(p.NotValid, lim.GateRows)
		p.Warnings = capNames(p.Warnings, lim.GateRows)
		d.Promotion = &p
	}
	g.Detail = &d
	return g
}

// capNames keeps the first n names and one line counting the rest.
func capNames(in []string, n int) []string {
	if len(in) <= n {
		return in
	}
	return append(slices.Clone(in[:n]), fmt.Sprintf("… %d more", len(in)-n))
}

// clip cuts s to at most n bytes (on a rune boundary), saying so.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d more bytes)", len(s)-cut)
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	//workflowcheck:ignore (collected, then sorted)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// capAuditSamples keeps at most perFK samples per constraint and total
// over the audit; it returns how many it dropped. figs is changed in place.
func capAuditSamples(figs []AuditFigure, perFK, total int) int {
	dropped := 0
	for i := range figs {
		n := min(len(figs[i].Samples), perFK, max(total, 0))
		total -= n
		dropped += len(figs[i].Samples) - n
		if n < len(figs[i].Samples) {
			figs[i].Samples = slices.Clone(figs[i].Samples[:n])
		}
	}
	return dropped
}

// CapAuditSamples bounds an audit's result where it is produced (the
// activity): AuditSamplesPerFK per constraint, AuditSamplesTotal in all.
func CapAuditSamples(figs []AuditFigure) []AuditFigure {
	capAuditSamples(figs, AuditSamplesPerFK, AuditSamplesTotal)
	return figs
}

// capTests keeps the failed tests and passed ones up to promotionTests
// lines, then one line counting the rest.
func capTests(in []notify.TestResult) []notify.TestResult {
	if len(in) <= promotionTests {
		return in
	}
	out := make([]notify.TestResult, 0, promotionTests+1)
	for _, t := range in {
		if !t.Passed && len(out) < promotionTests {
			out = append(out, t)
		}
	}
	passed := 0
	for _, t := range in {
		if t.Passed {
			if len(out) < promotionTests {
				out = append(out, t)
			} else {
				passed++
			}
		}
	}
	if rest := len(in) - len(out); rest > 0 {
		out = append(out, notify.TestResult{Name: fmt.Sprintf("… %d more tests not listed (%d passed)", rest, passed), Passed: rest == passed})
	}
	return out
}

// remediationLines is a remediation gate's summary and notification list
// for dirty: the first gateRows constraints one by one (gateSamples samples
// each), then one line for the rest.
func remediationLines(dirty []AuditFigure, impacts map[string]Impact, exports map[string]OrphanExport) ([]string, []notify.OrphanReport) {
	var lines []string
	var fks []notify.OrphanReport
	var restFKs int
	var restOrphans int64
	for i, f := range dirty {
		if i >= gateRows {
			restFKs++
			restOrphans += f.Orphans
			continue
		}
		s := f.Samples[:min(len(f.Samples), gateSamples)]
		or := notify.OrphanReport{Constraint: f.FK, Table: f.Table, Columns: f.Columns,
			RefTable: f.References, Orphans: f.Orphans, Samples: s, Nullable: f.Nullable}
		lines = append(lines, fmt.Sprintf("%s: %d orphans (e.g. %s)", f.FK, f.Orphans, strings.Join(s, "; ")))
		if e, ok := exports[f.FK]; ok {
			or.Export = e.Note()
			lines = append(lines, "  full list: "+e.Note())
		}
		if imp, ok := impacts[f.FK]; ok {
			or.Nullable, or.Triggers, or.Impossible = imp.Nullable, imp.Triggers, imp.Impossible
			or.Dependents = imp.Dependents
			lines = append(lines, impactLines(imp)...)
		}
		fks = append(fks, or)
	}
	if restFKs > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more constraints with %d orphans (fkrollout status --constraints lists them all)", restFKs, restOrphans))
	}
	return lines, fks
}

// ConstraintsQuery asks for a page of constraints: Offset (0-based),
// Limit (default and most: MaxConstraintsPage), optionally only one
// environment's view or one state there.
type ConstraintsQuery struct {
	Offset      int             `json:"offset,omitempty"`
	Limit       int             `json:"limit,omitempty"`
	Environment string          `json:"environment,omitempty"`
	State       ConstraintState `json:"state,omitempty"`
}

// MaxConstraintsPage is the largest page the constraints query returns.
const MaxConstraintsPage = 200

// ConstraintsPage is one page of constraints with their last audit.
type ConstraintsPage struct {
	// Total is how many constraints match (all pages).
	Total  int `json:"total"`
	Offset int `json:"offset"`
	// Next is the offset of the next page (0: this was the last).
	Next        int                `json:"next,omitempty"`
	Constraints []ConstraintDetail `json:"constraints"`
}

// ConstraintDetail is one constraint and, per environment, its last audit
// figure (orphans and sample rows).
type ConstraintDetail struct {
	ConstraintStatus
	Audit map[string]AuditFigure `json:"audit,omitempty"`
}

// ConstraintPage answers the constraints query.
func (s *Status) ConstraintPage(q ConstraintsQuery) (ConstraintsPage, error) {
	if q.Offset < 0 || q.Limit < 0 {
		return ConstraintsPage{}, fmt.Errorf("offset %d, limit %d: want 0 or more", q.Offset, q.Limit)
	}
	if q.Environment != "" && !slices.Contains(s.EnvironmentOrder, q.Environment) {
		return ConstraintsPage{}, fmt.Errorf("environment %q is not one of %s", q.Environment, strings.Join(s.EnvironmentOrder, ", "))
	}
	if q.State != "" && q.Environment == "" {
		return ConstraintsPage{}, fmt.Errorf("state %q: name the environment too", q.State)
	}
	limit := q.Limit
	if limit == 0 || limit > MaxConstraintsPage {
		limit = MaxConstraintsPage
	}
	var match []ConstraintStatus
	for _, c := range s.Constraints {
		if q.State != "" && c.Environments[q.Environment].State != q.State {
			continue
		}
		match = append(match, c)
	}
	page := ConstraintsPage{Total: len(match), Offset: q.Offset, Constraints: []ConstraintDetail{}}
	if q.Offset >= len(match) {
		return page, nil
	}
	end := min(len(match), q.Offset+limit)
	if end < len(match) {
		page.Next = end
	}
	for _, c := range match[q.Offset:end] {
		d := ConstraintDetail{ConstraintStatus: c}
		if q.Environment != "" {
			d.Environments = map[string]ConstraintEnvState{q.Environment: c.Environments[q.Environment]}
		}
		for _, env := range sortedKeys(s.Environments) {
			r := s.Environments[env]
			if q.Environment != "" && env != q.Environment {
				continue
			}
			for _, f := range r.LastAudit {
				if f.FK == c.Name {
					f.Samples = f.Samples[:min(len(f.Samples), AuditSamplesPerFK)]
					if d.Audit == nil {
						d.Audit = map[string]AuditFigure{}
					}
					d.Audit[env] = f
				}
			}
		}
		page.Constraints = append(page.Constraints, d)
	}
	return page, nil
}

// result is what the workflow returns: the bounded copy of its status
// (histories before boundedVersion returned the whole status).
func (w *rollout) result() *Status {
	if w.bounded {
		return w.snapshot().Bounded(StatusLimitsResult)
	}
	return w.snapshot()
}
