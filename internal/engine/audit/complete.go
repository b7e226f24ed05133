package audit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// ErrUncapturedChanges: a remediation batch removed or changed rows of some
// table without a quarantine copy of each (a user trigger, or a cascade the
// walk did not foresee). The batch is rolled back, so every committed batch
// satisfies "quarantine rows = rows removed or changed", per table.
var ErrUncapturedChanges = errors.New("rows removed or changed without a quarantine copy")

// tableStats is a table's n_tup_del/n_tup_upd as this backend counts them.
type tableStats struct {
	name     plan.TableName
	del, upd int64
}

// statSQL reads the backend's pending per-table counters, partitions
// summed into their root, for every user table with any (fkrollout's
// quarantine excluded: its rows are inserts, but so is nothing else).
//
// The counters are not the transaction's alone: PostgreSQL keeps counting
// across transactions (rolled-back ones included) until the backend
// flushes them, which it never does inside a transaction. Taken at the
// start and at the end of the same transaction, their difference is
// exactly what the transaction deleted and updated (HOT updates included).
const statSQL = `
SELECT r.oid, rn.nspname::text, r.relname::text,
       sum(pg_stat_get_xact_tuples_deleted(c.oid))::bigint, sum(pg_stat_get_xact_tuples_updated(c.oid))::bigint
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class r ON r.oid = coalesce(pg_partition_root(c.oid), c.oid)
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
  AND c.oid IS DISTINCT FROM to_regclass('fkrollout.quarantine')
  AND (pg_stat_get_xact_tuples_deleted(c.oid) > 0 OR pg_stat_get_xact_tuples_updated(c.oid) > 0)
GROUP BY 1, 2, 3`

func statSnapshot(ctx context.Context, tx pgx.Tx) (map[uint32]tableStats, error) {
	rows, err := tx.Query(ctx, statSQL)
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	out := map[uint32]tableStats{}
	var oid uint32
	var s tableStats
	_, err = pgx.ForEachRow(rows, []any{&oid, &s.name.Schema, &s.name.Name, &s.del, &s.upd}, func() error {
		out[oid] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	return out, nil
}

// checkComplete compares, per table, the rows this transaction deleted and
// updated since before was taken with the quarantine rows cp counts.
func checkComplete(ctx context.Context, tx pgx.Tx, before map[uint32]tableStats, cp captured) error {
	after, err := statSnapshot(ctx, tx)
	if err != nil {
		return err
	}
	want, err := capturedByRoot(ctx, tx, cp)
	if err != nil {
		return err
	}
	var uncaptured, missing []string
	for _, oid := range unionOIDs(after, want) {
		a, b, w := after[oid], before[oid], want[oid]
		name := a.name
		if name.Name == "" {
			name = w.name
		}
		del, upd := a.del-b.del, a.upd-b.upd
		line := fmt.Sprintf("%s: %d deleted and %d updated, %d and %d copied", name, del, upd, w.deleted, w.updated)
		switch {
		case del > w.deleted || upd > w.updated:
			uncaptured = append(uncaptured, line)
		case del < w.deleted || upd < w.updated:
			missing = append(missing, line)
		}
	}
	if len(uncaptured) > 0 {
		return fmt.Errorf("%w: %s; batch rolled back (check the triggers of these tables)", ErrUncapturedChanges, strings.Join(uncaptured, "; "))
	}
	if len(missing) > 0 {
		return fmt.Errorf("quarantine copies without a matching change: %s; batch rolled back", strings.Join(missing, "; "))
	}
	return nil
}

// capturedByRoot keys cp by partition root, as statSQL does: a remediated
// table may itself be a partition.
func capturedByRoot(ctx context.Context, tx pgx.Tx, cp captured) (map[uint32]capture, error) {
	out := map[uint32]capture{}
	for oid, c := range cp {
		var root uint32
		if err := tx.QueryRow(ctx, `SELECT coalesce(pg_partition_root($1::oid), $1::oid)::oid`, oid).Scan(&root); err != nil {
			return nil, fmt.Errorf("partition root of %s: %w", c.name, err)
		}
		w := out[root]
		if w.name.Name == "" {
			w.name = c.name
		}
		w.deleted += c.deleted
		w.updated += c.updated
		out[root] = w
	}
	return out, nil
}

func unionOIDs(a map[uint32]tableStats, b map[uint32]capture) []uint32 {
	seen := map[uint32]bool{}
	var out []uint32
	for k := range a {
		seen[k] = true
		out = append(out, k)
	}
	for k := range b {
		if !seen[k] {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
