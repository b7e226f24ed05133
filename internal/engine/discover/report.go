package discover

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/stats"
)

// report turns the exact-checked pairs into the ranked, named,
// prioritised candidates and the near misses.
func (r *runner) report(survivors []*pair) Report {
	rep := Report{
		Schemas: r.schemas(), Threshold: r.opts.Threshold, SampleSize: r.opts.SampleSize,
		Tables: len(r.cat.tables), ExistingForeignKeys: len(r.cat.fks),
		Candidates: []Candidate{}, NearMisses: []Candidate{},
	}
	accepted, near, reasons := r.resolve(survivors)
	for _, p := range accepted {
		rep.Candidates = append(rep.Candidates, r.candidate(p))
	}
	r.prioritise(rep.Candidates)
	r.name(rep.Candidates)
	for i := range rep.Candidates {
		rep.Candidates[i].Rank = i + 1
	}
	for i, p := range near {
		if p.conf < nearMissFloor {
			continue
		}
		c := r.candidate(p)
		c.Name, c.Reason = "", reasons[i]
		rep.NearMisses = append(rep.NearMisses, c)
	}
	r.mu.Lock()
	rep.Warnings = slices.Clone(r.warnings)
	r.mu.Unlock()
	for _, s := range r.opts.Schemas {
		if !slices.Contains(rep.Schemas, s) {
			rep.Warnings = append(rep.Warnings, "schema "+plan.QuoteIfNeeded(s)+": no tables (does it exist?)")
		}
	}
	sort.Strings(rep.Warnings)
	rep.Migration = Migration(rep, r.opts.MigrationName)
	return rep
}

func (r *runner) schemas() []string {
	seen := map[string]bool{}
	out := []string{}
	for _, t := range r.cat.tables {
		if !seen[t.Schema] {
			seen[t.Schema] = true
			out = append(out, t.Schema)
		}
	}
	return out
}

// resolve accepts, per child column set, the best pair at or above the
// threshold; the rest are near misses with the reason.
func (r *runner) resolve(pairs []*pair) (accepted, near []*pair, reasons []string) {
	sorted := slices.Clone(pairs)
	sort.SliceStable(sorted, func(i, j int) bool { return r.better(sorted[i], sorted[j]) })
	winner := map[*colset]*pair{}
	for _, p := range sorted {
		switch w := winner[p.child]; {
		case p.conf < r.opts.Threshold:
			near = append(near, p)
			reasons = append(reasons, fmt.Sprintf("confidence %.2f is below the threshold %.2f", p.conf, r.opts.Threshold))
		case w != nil:
			near = append(near, p)
			reasons = append(reasons, fmt.Sprintf("the same columns fit %s better (%.2f)", keyString(w.parent), w.conf))
		default:
			winner[p.child] = p
			accepted = append(accepted, p)
		}
	}
	return accepted, near, reasons
}

// better orders by confidence, then name evidence, coverage, primary keys
// before other keys, then names (a stable report).
func (r *runner) better(a, b *pair) bool {
	if a.conf != b.conf {
		return a.conf > b.conf
	}
	if a.name.Score != b.name.Score {
		return a.name.Score > b.name.Score
	}
	if ca, cb := r.coverage(a), r.coverage(b); ca != cb {
		return ca > cb
	}
	if a.parent.Primary != b.parent.Primary {
		return a.parent.Primary
	}
	return pairString(a) < pairString(b)
}

func pairString(p *pair) string {
	return p.child.t.display() + "(" + strings.Join(colNames(p.child.cols), ",") + ")→" + keyString(p.parent)
}

// coverage is the share of the parent's keys the child's values reference.
func (r *runner) coverage(p *pair) float64 {
	_, included, _ := p.inclusion()
	rows := r.size(p.parent.Table).rows
	if rows <= 0 {
		return 0
	}
	return round3(min(1, float64(included)/float64(rows)))
}

func (r *runner) candidate(p *pair) Candidate {
	t := p.child.t
	ratio, included, distinct := p.inclusion()
	nullable := true
	for _, c := range p.child.cols {
		nullable = nullable && c.Nullable
	}
	ev := Evidence{
		NameMatch: p.name.Kind, NameScore: p.name.Score, NameDetail: p.name.Detail,
		InclusionRatio: round3(ratio), RowInclusion: round3(p.rowRatio()), DistinctValues: distinct, Exact: p.exact && p.child.exact,
		TableSampled: p.child.sampled, Coverage: r.coverage(p), ParentRows: r.size(p.parent.Table).rows,
		ChildRows: r.size(t).rows, Nullable: nullable, WriteRate: t.Writes,
		DataStrength: round3(dataStrength(dataEvidence{Distinct: distinct, Included: included, Chance: p.chance})),
		Competing:    p.competitors, Why: p.why,
	}
	if p.child.exact {
		ev.ChildRows = p.child.rows
		if p.child.rows > 0 {
			ev.NullFraction = round3(float64(p.child.nulls) / float64(p.child.rows))
		}
	}
	c := Candidate{
		Schema: t.Schema, Table: t.Name, Columns: colNames(p.child.cols),
		RefSchema: p.parent.Table.Schema, RefTable: p.parent.Table.Name, RefColumns: colNames(p.parent.Cols),
		RefKey: p.parent.Name, Confidence: p.conf, OnDelete: string(onDelete(nullable)), Evidence: ev,
		Orphans: Orphans{Rows: p.orphanRows, Distinct: p.orphanDistinct, Exact: p.exact},
	}
	if !p.exact {
		c.Orphans.Distinct = distinct - included
	}
	if ix := r.cat.supportingIndex(t, p.child.cols); ix != "" {
		c.Index = Index{Name: ix, Supports: true}
	} else {
		c.Index = Index{Suggested: indexSQL(t, c.Columns)}
	}
	return c
}

// onDelete: RESTRICT keeps a parent with children; a nullable column is an
// optional link, whose children outlive the parent with a NULL.
func onDelete(nullable bool) plan.Action {
	if nullable {
		return plan.ActionSetNull
	}
	return plan.ActionRestrict
}

// indexSQL is the statement `fkrollout indexes --create` would run.
func indexSQL(t *table, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + pgx.Identifier{stats.IndexName(t.Name, cols)}.Sanitize() +
		" ON " + t.ident() + " (" + strings.Join(q, ", ") + ")"
}

// Priority weights: a big, busy child table pointing at a parent many
// tables reference is the integrity that matters most.
const (
	weightSize    = 0.4
	weightWrites  = 0.3
	weightCentral = 0.3
)

// prioritise sets each accepted candidate's priority from its child's
// size, write rate and how central its parent is, each relative to the
// largest among the candidates, and sorts them by confidence.
func (r *runner) prioritise(cands []Candidate) {
	refs := map[string]int{}
	for _, t := range r.cat.tables {
		refs[qualified(t.Schema, t.Name)] = r.cat.referencedBy(t)
	}
	for _, c := range cands {
		refs[qualified(c.RefSchema, c.RefTable)]++
	}
	var maxSize, maxWrites, maxCentral float64
	for i := range cands {
		c := &cands[i]
		c.Evidence.ParentReferences = refs[qualified(c.RefSchema, c.RefTable)]
		maxSize = max(maxSize, math.Log10(float64(c.Evidence.ChildRows)+1))
		maxWrites = max(maxWrites, math.Log10(float64(c.Evidence.WriteRate)+1))
		maxCentral = max(maxCentral, float64(c.Evidence.ParentReferences))
	}
	for i := range cands {
		c := &cands[i]
		s := weightSize*ratio(math.Log10(float64(c.Evidence.ChildRows)+1), maxSize) +
			weightWrites*ratio(math.Log10(float64(c.Evidence.WriteRate)+1), maxWrites) +
			weightCentral*ratio(float64(c.Evidence.ParentReferences), maxCentral)
		c.Priority = priorityFor(s).String()
		c.Evidence.Why = append(c.Evidence.Why, fmt.Sprintf("priority %s: %d child rows, %d writes, parent referenced by %d (score %.2f)",
			c.Priority, c.Evidence.ChildRows, c.Evidence.WriteRate, c.Evidence.ParentReferences, s))
	}
	sort.SliceStable(cands, func(i, j int) bool {
		if cands[i].Confidence != cands[j].Confidence {
			return cands[i].Confidence > cands[j].Confidence
		}
		return cands[i].String() < cands[j].String()
	})
}

func ratio(x, m float64) float64 {
	if m <= 0 {
		return 0
	}
	return x / m
}

func priorityFor(score float64) plan.Priority {
	switch {
	case score >= 0.75:
		return plan.PriorityCritical
	case score >= 0.5:
		return plan.PriorityHigh
	case score >= 0.25:
		return plan.PriorityMedium
	}
	return plan.PriorityLow
}

// name gives each candidate the name PostgreSQL would: the default
// <table>_<cols>_fkey, or _fkey1, _fkey2, … when the schema (or an earlier
// candidate) holds it.
func (r *runner) name(cands []Candidate) {
	used := map[string]map[string]bool{}
	for i := range cands {
		c := &cands[i]
		if used[c.Schema] == nil {
			used[c.Schema] = map[string]bool{}
		}
		taken := func(n string) bool { return r.cat.names[c.Schema][n] || used[c.Schema][n] }
		c.Name = foreignKeyName(c.Table, c.Columns, taken)
		used[c.Schema][c.Name] = true
	}
}
