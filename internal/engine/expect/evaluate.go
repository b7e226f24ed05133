package expect

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Sources of an expectation.
const (
	SourcePlan   = "plan"
	SourceWorker = "worker configuration"
)

// Result is one expectation with the figure measured.
type Result struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Target string `json:"target"`
	Actual string `json:"actual"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Input is what Check compares: the plan's expectations, the worker's for
// the environment, and the orphans the last audit left (the audit counts
// them; Check does not audit again).
type Input struct {
	Plan   *plan.Expectations
	Worker Config
	// Orphans is the planned constraints' orphans after remediation;
	// OrphansKnown is false when no audit ran.
	Orphans      int64
	OrphansKnown bool
	Schemas      []string
}

// Check measures what the expectations need and compares. Every
// expectation gets a result; a query that fails to run is a failed result
// naming the error, never a pass. Nothing stated: no result, no query.
func Check(ctx context.Context, db dbx.Beginner, lock dbx.LockPolicy, in Input) ([]Result, error) {
	sets := []struct {
		source string
		e      *plan.Expectations
	}{{SourcePlan, in.Plan}, {SourceWorker, in.Worker.Figures()}}
	needCatalog := false
	for _, s := range sets {
		if e := s.e; e != nil && (e.ForeignKeys != nil || e.CheckConstraints != nil || e.Tables != nil || e.TypesAligned != nil) {
			needCatalog = true
		}
	}
	var f Figures
	if needCatalog {
		var err error
		if f, err = Measure(ctx, db, in.Schemas, lock); err != nil {
			return nil, err
		}
	}
	var out []Result
	for _, s := range sets {
		out = append(out, compare(s.source, s.e, f, in)...)
	}
	// Queries: the worker's own, then any the plan names that the worker
	// did not already run.
	byName := map[string]Query{}
	var names []string
	for _, q := range in.Worker.Queries {
		byName[q.Name] = q
		names = append(names, q.Name)
	}
	if in.Plan != nil {
		for _, n := range in.Plan.Queries {
			if _, ok := byName[n]; !ok {
				out = append(out, Result{Name: "Runbook query " + n, Source: SourcePlan, Target: "configured for this environment", Actual: "not configured",
					Detail: fmt.Sprintf("the plan expects runbook query %q, which the worker configuration does not define for this environment (defined: %s)", n, orNone(names))})
			}
		}
	}
	for _, q := range in.Worker.Queries {
		out = append(out, runQuery(ctx, db, lock, q))
	}
	return out, nil
}

func compare(source string, e *plan.Expectations, f Figures, in Input) []Result {
	if e == nil {
		return nil
	}
	var out []Result
	count := func(name string, c *plan.Count, n int64, detail string) {
		if c == nil {
			return
		}
		out = append(out, Result{Name: name, Source: source, Target: c.String(), Actual: fmt.Sprint(n), OK: c.Holds(n), Detail: detail})
	}
	notValid := ""
	if f.ForeignKeysNotValid > 0 {
		notValid = fmt.Sprintf("%d more NOT VALID (not counted: they do not check existing rows)", f.ForeignKeysNotValid)
	}
	count("Validated foreign keys", e.ForeignKeys, f.ForeignKeys, notValid)
	count("CHECK constraints", e.CheckConstraints, f.CheckConstraints, "")
	count("Tables", e.Tables, f.Tables, "")
	if e.Orphans != nil {
		r := Result{Name: "Orphaned rows (planned constraints)", Source: source, Target: e.Orphans.String(), Actual: fmt.Sprint(in.Orphans), OK: in.OrphansKnown && e.Orphans.Holds(in.Orphans)}
		if !in.OrphansKnown {
			r.Actual, r.Detail = "not audited", "no audit ran in this environment"
		}
		out = append(out, r)
	}
	if want := e.TypesAligned; want != nil {
		aligned := len(f.TypeMismatches) == 0
		r := Result{Name: "Column types aligned", Source: source, Target: map[bool]string{true: "aligned", false: "not required"}[*want],
			Actual: "aligned", OK: aligned || !*want}
		if !aligned {
			r.Actual = fmt.Sprintf("%d mismatch(es)", len(f.TypeMismatches))
			r.Detail = strings.Join(f.TypeMismatches, "; ")
		}
		out = append(out, r)
	}
	return out
}

func runQuery(ctx context.Context, db dbx.Beginner, lock dbx.LockPolicy, q Query) Result {
	var targets []string
	if q.ExpectValue != nil {
		targets = append(targets, fmt.Sprintf("value %q", *q.ExpectValue))
	}
	if q.ExpectRows != nil {
		targets = append(targets, "rows "+q.ExpectRows.String())
	}
	r := Result{Name: "Runbook query " + q.Name, Source: SourceWorker, Target: strings.Join(targets, ", ")}
	a, err := Run(ctx, db, q, lock)
	if err != nil {
		r.Actual, r.Detail = "error", err.Error()
		return r
	}
	var actual []string
	ok := true
	if q.ExpectValue != nil {
		v := a.First
		if a.Rows == 0 {
			v = "no row"
		}
		actual = append(actual, fmt.Sprintf("value %q", v))
		ok = ok && a.Rows > 0 && a.First == *q.ExpectValue
	}
	if q.ExpectRows != nil {
		actual = append(actual, fmt.Sprintf("rows %d", a.Rows))
		ok = ok && q.ExpectRows.Holds(a.Rows)
	}
	r.Actual, r.OK = strings.Join(actual, ", "), ok
	return r
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(slices.Sorted(slices.Values(names)), ", ")
}
