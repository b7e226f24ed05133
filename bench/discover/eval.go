// Package discoverbench measures internal/discover against schemas whose
// foreign keys are known: it drops the declared keys, runs discovery and
// reports precision and recall against the dropped set, and run time.
//
//	go test ./bench/discover -run TestEvaluation -v
//
// docs/DISCOVER.md holds the measured figures and explains every miss.
package discoverbench

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/discover"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Key is a foreign key by what it links, "schema.table(cols) → schema.parent(cols)",
// the form discover.Candidate.String uses; constraint names do not matter.
type Key string

// KeyOf spells a link the way the candidates do.
func KeyOf(schema, table string, cols []string, refSchema, refTable string, refCols []string) Key {
	return Key(discover.Candidate{Schema: schema, Table: table, Columns: cols,
		RefSchema: refSchema, RefTable: refTable, RefColumns: refCols}.String())
}

// PlanKeys are a plan's foreign keys as Keys (a bare table is in public).
func PlanKeys(p plan.Plan) []Key {
	out := make([]Key, 0, len(p.ForeignKeys))
	for _, fk := range p.ForeignKeys {
		out = append(out, KeyOf(cmp.Or(fk.Table.Schema, "public"), fk.Table.Name, fk.Columns,
			cmp.Or(fk.RefTable.Schema, "public"), fk.RefTable.Name, fk.RefColumns))
	}
	return out
}

// declaredSQL lists every declared foreign key with its columns in order.
const declaredSQL = `
SELECT n.nspname, c.relname,
       array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(x, o)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.x ORDER BY o),
       pn.nspname, pc.relname,
       array(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(x, o)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.x ORDER BY o)
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0`

// Declared reads the database's declared foreign keys.
func Declared(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]Key, error) {
	rows, err := q.Query(ctx, declaredSQL)
	if err != nil {
		return nil, fmt.Errorf("read declared foreign keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Key, error) {
		var s, t, ps, pt string
		var cols, pcols []string
		if err := r.Scan(&s, &t, &cols, &ps, &pt, &pcols); err != nil {
			return "", err
		}
		return KeyOf(s, t, cols, ps, pt, pcols), nil
	})
	if err != nil {
		return nil, fmt.Errorf("read declared foreign keys: %w", err)
	}
	return keys, nil
}

// Score is one schema's result against its truth.
type Score struct {
	Schema    string
	Threshold float64
	Truth     int
	Found     int
	Precision float64
	Recall    float64
	Duration  time.Duration
	// Misses are true keys not accepted; Extras accepted keys not in the truth.
	Misses []Key
	Extras []Key
}

// Evaluate scores the candidates at or above threshold against truth.
func Evaluate(schema string, truth []Key, cands []discover.Candidate, threshold float64, took time.Duration) Score {
	want := map[Key]bool{}
	for _, k := range truth {
		want[k] = true
	}
	s := Score{Schema: schema, Threshold: threshold, Truth: len(want), Duration: took}
	got := map[Key]bool{}
	for _, c := range cands {
		if c.Confidence < threshold {
			continue
		}
		k := Key(c.String())
		got[k] = true
		if !want[k] {
			s.Extras = append(s.Extras, k)
		}
	}
	for k := range want {
		if !got[k] {
			s.Misses = append(s.Misses, k)
		}
	}
	slices.Sort(s.Misses)
	slices.Sort(s.Extras)
	s.Found = len(got)
	tp := len(got) - len(s.Extras)
	s.Precision, s.Recall = ratio(tp, len(got)), ratio(tp, len(want))
	return s
}

// ratio is a/b, 1 when b is 0 (nothing claimed is nothing wrong).
func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// PrintTable writes the scores as the table docs/DISCOVER.md shows; with
// details, each miss and extra follows it.
func PrintTable(w io.Writer, scores []Score, details bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCHEMA\tTHRESHOLD\tTRUTH\tFOUND\tTP\tFP\tFN\tPRECISION\tRECALL\tTIME")
	for _, s := range scores {
		fmt.Fprintf(tw, "%s\t%.2f\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t%s\n", s.Schema, s.Threshold, s.Truth, s.Found,
			s.Found-len(s.Extras), len(s.Extras), len(s.Misses), s.Precision, s.Recall, s.Duration.Round(time.Millisecond))
	}
	tw.Flush()
	if !details {
		return
	}
	for _, s := range scores {
		for _, k := range s.Misses {
			fmt.Fprintf(w, "  %s: missed %s\n", s.Schema, k)
		}
		for _, k := range s.Extras {
			fmt.Fprintf(w, "  %s: extra  %s\n", s.Schema, k)
		}
	}
}

// Sweep scores one run's candidates (run at a low threshold) at several
// thresholds: how the default was chosen.
func Sweep(schema string, truth []Key, cands []discover.Candidate, thresholds []float64) []Score {
	out := make([]Score, len(thresholds))
	for i, th := range thresholds {
		out[i] = Evaluate(schema, truth, cands, th, 0)
	}
	return out
}

// describe is one line per candidate for the log: the evidence behind it.
func describe(c discover.Candidate) string {
	e := c.Evidence
	return fmt.Sprintf("%.3f %-8s %s [name %s %.2f; %.1f%% of %d values; orphans %d rows] %s",
		c.Confidence, c.Priority, c.String(), e.NameMatch, e.NameScore, 100*e.InclusionRatio,
		e.DistinctValues, c.Orphans.Rows, strings.TrimSpace(c.Reason))
}
