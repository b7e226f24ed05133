package stats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// IndexAdvice is plan.IndexAdvice: the type lives with the plan types so
// that the perf phase's results can carry it without this package's driver.
type IndexAdvice = plan.IndexAdvice

// indexesSQL lists, for one table, every btree index usable by the
// referential check: valid, ready, not partial (a partial index cannot serve
// an arbitrary parent key), with its key columns in order. Expression
// columns come back as "" so they never match.
const indexesSQL = `
SELECT ic.relname,
       array(SELECT coalesce(a.attname, '')
             FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum > 0
             WHERE k.ord <= i.indnkeyatts
             ORDER BY k.ord) AS cols
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $1 AND c.relname = $2)
  AND i.indisvalid AND i.indisready AND i.indpred IS NULL AND am.amname = 'btree'
ORDER BY ic.relname`

// CheckIndexes reports, per foreign key, whether an index leads with its
// referencing columns. The check PostgreSQL runs is
// "WHERE a = $1 AND b = $2", so any order of the FK columns among the
// index's leading columns serves it.
func CheckIndexes(ctx context.Context, q Querier, fks []plan.ForeignKey) ([]IndexAdvice, error) {
	out := make([]IndexAdvice, 0, len(fks))
	for _, fk := range fks {
		a, err := checkOne(ctx, q, fk)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func checkOne(ctx context.Context, q Querier, fk plan.ForeignKey) (IndexAdvice, error) {
	if len(fk.Columns) == 0 {
		return IndexAdvice{}, fmt.Errorf("index check %s: foreign key has no columns", fk.ID())
	}
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))`, fk.Table.Schema, fk.Table.Name).Scan(&exists); err != nil {
		return IndexAdvice{}, fmt.Errorf("index check %s: look up table: %w", fk.ID(), err)
	}
	if !exists {
		return IndexAdvice{}, fmt.Errorf("index check %s: table %s does not exist", fk.ID(), fk.Table)
	}
	a := IndexAdvice{
		FK: fk.ID(), Table: fk.Table.String(), Columns: slices.Clone(fk.Columns),
		TableRef: fk.Table, IndexName: IndexName(fk.Table.Name, fk.Columns),
	}
	rows, err := q.Query(ctx, indexesSQL, fk.Table.Schema, fk.Table.Name)
	if err != nil {
		return IndexAdvice{}, fmt.Errorf("index check %s: list indexes: %w", fk.ID(), err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var cols []string
		if err := rows.Scan(&name, &cols); err != nil {
			return IndexAdvice{}, fmt.Errorf("index check %s: scan index: %w", fk.ID(), err)
		}
		if !a.Covered && leadsWith(cols, fk.Columns) {
			a.Covered, a.Index = true, name
		}
	}
	if err := rows.Err(); err != nil {
		return IndexAdvice{}, fmt.Errorf("index check %s: list indexes: %w", fk.ID(), err)
	}
	if !a.Covered {
		a.Statement = createSQL(fk.Table, a.IndexName, fk.Columns)
	}
	return a, nil
}

// leadsWith reports whether the first len(fkCols) index columns are exactly
// the FK columns, in any order.
func leadsWith(indexCols, fkCols []string) bool {
	if len(indexCols) < len(fkCols) {
		return false
	}
	lead := slices.Clone(indexCols[:len(fkCols)])
	want := slices.Clone(fkCols)
	slices.Sort(lead)
	slices.Sort(want)
	return slices.Equal(lead, want)
}

func createSQL(t plan.TableName, index string, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return "CREATE INDEX CONCURRENTLY IF NOT EXISTS " + pgx.Identifier{index}.Sanitize() +
		" ON " + t.Sanitize() + " (" + strings.Join(q, ", ") + ")"
}

// maxIdentLen is PostgreSQL's NAMEDATALEN-1: longer names are silently
// truncated by the server, which would break IF NOT EXISTS idempotency.
const maxIdentLen = 63

// IndexName is the deterministic name fkrollout gives a foreign key's index:
// <table>_<col>_<col>_fkr_idx, and when that exceeds 63 bytes a truncated
// prefix plus 8 hex digits of a hash of the full name, so two long names
// never collide after truncation.
func IndexName(table string, cols []string) string {
	const suffix = "_fkr_idx"
	full := table + "_" + strings.Join(cols, "_") + suffix
	if len(full) <= maxIdentLen {
		return full
	}
	sum := sha256.Sum256([]byte(table + "\x00" + strings.Join(cols, "\x00")))
	tail := "_" + hex.EncodeToString(sum[:4]) + suffix
	prefix := full[:maxIdentLen-len(tail)]
	for !utf8.ValidString(prefix) { // never cut a multi-byte character in half
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + tail
}

// CreateIndex builds a missing FK index with CREATE INDEX CONCURRENTLY, which
// takes no lock that blocks writes but cannot run inside a transaction block.
// It therefore holds one dedicated session from the pool for the statement
// with a session-level lock_timeout: point it at a direct connection or a
// session-mode pooler, not a transaction-mode pooler (PgBouncer
// pool_mode=transaction would move the SET and the CREATE to different
// server sessions).
//
// A failed concurrent build leaves an INVALID index behind; CreateIndex drops
// it (DROP INDEX CONCURRENTLY) before returning the error, and drops a stale
// invalid one left by an earlier attempt before building, so calling it again
// is safe. A lock timeout (55P03) is returned, not retried: the caller's
// activity retry policy owns retries of this non-transactional statement.
func CreateIndex(ctx context.Context, pool *pgxpool.Pool, a IndexAdvice, lockTimeout time.Duration) (err error) {
	if a.Covered {
		return nil
	}
	if a.TableRef.Schema == "" || a.TableRef.Name == "" || a.IndexName == "" || len(a.Columns) == 0 {
		return fmt.Errorf("create index for %s: advice lacks table_ref, index_name or columns (use CheckIndexes)", a.FK)
	}
	if lockTimeout <= 0 {
		return fmt.Errorf("create index %s: lock timeout must be positive, got %s", a.IndexName, lockTimeout)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("create index %s: acquire session: %w", a.IndexName, err)
	}
	defer func() {
		// A session whose lock_timeout could not be reset must not go back to
		// the pool with our setting on it.
		if rerr := dbx.Reset(context.WithoutCancel(ctx), conn, dbx.Settings{LockTimeout: lockTimeout}); rerr != nil {
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
			return
		}
		conn.Release()
	}()
	if err := dbx.Apply(ctx, conn, dbx.Settings{LockTimeout: lockTimeout}, dbx.Session); err != nil {
		return fmt.Errorf("create index %s: %w", a.IndexName, err)
	}
	qualified := pgx.Identifier{a.TableRef.Schema, a.IndexName}.Sanitize()

	valid, found, err := indexState(ctx, conn, a.TableRef.Schema, a.IndexName)
	if err != nil {
		return fmt.Errorf("create index %s: %w", a.IndexName, err)
	}
	if found && !valid {
		// IF NOT EXISTS would otherwise accept the broken leftover as done.
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+qualified); err != nil {
			return fmt.Errorf("create index %s: drop invalid leftover: %w", a.IndexName, err)
		}
	}
	if _, err := conn.Exec(ctx, createSQL(a.TableRef, a.IndexName, a.Columns)); err != nil {
		cerr := fmt.Errorf("create index %s on %s: %w", a.IndexName, a.Table, err)
		if valid, found, serr := indexState(context.WithoutCancel(ctx), conn, a.TableRef.Schema, a.IndexName); serr == nil && found && !valid {
			if derr := dropInvalid(context.WithoutCancel(ctx), conn, qualified, lockTimeout); derr != nil {
				return errors.Join(cerr, fmt.Errorf("drop invalid index %s left by the failed build: %w", a.IndexName, derr))
			}
		}
		return cerr
	}
	valid, found, err = indexState(ctx, conn, a.TableRef.Schema, a.IndexName)
	switch {
	case err != nil:
		return fmt.Errorf("create index %s: %w", a.IndexName, err)
	case !found:
		return fmt.Errorf("create index %s: index missing after CREATE INDEX", a.IndexName)
	case !valid:
		if derr := dropInvalid(ctx, conn, qualified, lockTimeout); derr != nil {
			return fmt.Errorf("create index %s: built INVALID and could not drop it: %w", a.IndexName, derr)
		}
		return fmt.Errorf("create index %s: built INVALID (dropped)", a.IndexName)
	}
	return nil
}

// dropInvalid removes an INVALID index left by a failed build. DROP INDEX
// CONCURRENTLY waits for every transaction touching the table, the same
// writers that probably made the build time out, so it gets a longer
// lock_timeout; if it still fails the next CreateIndex call drops the
// leftover before building.
func dropInvalid(ctx context.Context, conn *pgxpool.Conn, qualified string, lockTimeout time.Duration) error {
	cleanup := max(10*lockTimeout, 10*time.Second)
	if err := dbx.Apply(ctx, conn, dbx.Settings{LockTimeout: cleanup}, dbx.Session); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+qualified); err != nil {
		return err
	}
	return nil
}

// indexState reports whether an index of that name exists in the schema and
// whether it is valid. A non-index relation of that name is an error: IF NOT
// EXISTS would silently skip and leave the FK unindexed.
func indexState(ctx context.Context, conn *pgxpool.Conn, schema, name string) (valid, found bool, err error) {
	var kind string
	var v *bool
	err = conn.QueryRow(ctx, `SELECT c.relkind::text, i.indisvalid AND i.indisready
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_index i ON i.indexrelid = c.oid
		WHERE n.nspname = $1 AND c.relname = $2`, schema, name).Scan(&kind, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("look up index state: %w", err)
	}
	if kind != "i" || v == nil {
		return false, true, fmt.Errorf("relation %s.%s exists and is not an index", schema, name)
	}
	return *v, true, nil
}
