// Package explain runs the perf phase's plan checks on a live staging
// database: EXPLAIN (ANALYZE, BUFFERS) of each foreign key's referential
// check and of the workload's representative statements, in rolled-back
// transactions, and the indexes built on request.
package explain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/stats"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
)

// Options bound the checks on a live staging database.
type Options struct {
	// LockTimeout for the rolled-back parent DELETE (default 1 s): a check
	// must never queue behind the application's locks.
	LockTimeout time.Duration `json:"lock_timeout"`
	// StatementTimeout per statement (default 30 s).
	StatementTimeout time.Duration `json:"statement_timeout"`
}

func (o Options) normalised() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = time.Second
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 30 * time.Second
	}
	return o
}

func (o Options) settings() dbx.Settings {
	return dbx.Settings{LockTimeout: o.LockTimeout, StatementTimeout: o.StatementTimeout}
}

// FKs checks every foreign key with default options.
func FKs(ctx context.Context, pool *pgxpool.Pool, fks []plan.ForeignKey) ([]perf.PlanCheck, error) {
	return FKsWith(ctx, pool, fks, Options{})
}

// FKsWith runs, per foreign key and in a transaction that is always
// rolled back:
//   - EXPLAIN (ANALYZE, BUFFERS) of the RI lookup
//     SELECT 1 FROM ONLY child x WHERE col = $1 FOR KEY SHARE OF x,
//     prepared with plan_cache_mode = force_generic_plan because the RI
//     trigger's cached plan goes generic after five executions;
//   - EXPLAIN (ANALYZE, BUFFERS) of a DELETE of one unreferenced parent row,
//     reading the FK trigger's own time.
//
// A sequential scan of the referencing table without an index leading with
// its columns yields the CREATE INDEX CONCURRENTLY recommendation.
func FKsWith(ctx context.Context, pool *pgxpool.Pool, fks []plan.ForeignKey, o Options) ([]perf.PlanCheck, error) {
	o = o.normalised()
	for _, fk := range fks {
		if len(fk.Columns) == 0 || len(fk.Columns) != len(fk.RefColumns) {
			return nil, fmt.Errorf("explain %s: %d referencing columns for %d referenced columns", fk.ID(), len(fk.Columns), len(fk.RefColumns))
		}
	}
	advice, err := stats.CheckIndexes(ctx, pool, fks)
	if err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	out := make([]perf.PlanCheck, 0, len(fks))
	for i, fk := range fks {
		c, err := explainOne(ctx, pool, fk, o)
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", fk.ID(), err)
		}
		c.Advice = advice[i]
		switch {
		case c.SeqScan && !c.Advice.Covered:
			c.Recommendation = c.Advice.Statement
		case c.SeqScan:
			c.Note = fmt.Sprintf("sequential scan although index %s leads with the columns: the table is small or its statistics are stale (ANALYZE %s)", c.Advice.Index, fk.Table)
		}
		out = append(out, c)
	}
	return out, nil
}

// CreateRecommendedIndexes builds, with CREATE INDEX CONCURRENTLY, the index
// of every check that recommends one. Only called when the plan asks for it.
// It returns the names of the indexes it built.
func CreateRecommendedIndexes(ctx context.Context, pool *pgxpool.Pool, checks []perf.PlanCheck, lockTimeout time.Duration) ([]string, error) {
	var built []string
	for _, c := range perf.NeedIndex(checks) {
		if err := stats.CreateIndex(ctx, pool, c.Advice, lockTimeout); err != nil {
			return built, fmt.Errorf("index for %s: %w", c.FK, err)
		}
		built = append(built, c.Advice.IndexName)
	}
	return built, nil
}

func explainOne(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o Options) (perf.PlanCheck, error) {
	c := perf.PlanCheck{
		FK: fk.ID(), Table: fk.Table.String(), Columns: fk.Columns,
		RefTable: fk.RefTable.String(), RefColumns: fk.RefColumns,
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return c, fmt.Errorf("acquire: %w", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		conn.Release()
		return c, fmt.Errorf("begin: %w", err)
	}
	// Everything here is a measurement: nothing may persist. A prepared
	// statement outlives the transaction, so it is deallocated too.
	defer func() {
		bg := context.WithoutCancel(ctx)
		_ = tx.Rollback(bg)
		_, _ = conn.Exec(bg, "DEALLOCATE fkr_ri_check")
		conn.Release()
	}()
	if err := dbx.Apply(ctx, tx, o.settings(), dbx.Transaction); err != nil {
		return c, err
	}
	for _, s := range []string{
		"SET LOCAL plan_cache_mode = force_generic_plan",
		"SET LOCAL standard_conforming_strings = on",
	} {
		if _, err := tx.Exec(ctx, s); err != nil {
			return c, fmt.Errorf("%s: %w", s, err)
		}
	}
	types, err := refTypes(ctx, tx, fk)
	if err != nil {
		return c, err
	}

	// The lookup, as ri_triggers.c builds it for RESTRICT / NO ACTION (the
	// CASCADE and SET NULL variants search the same way).
	child := "ONLY " + fk.Table.Sanitize() + " x"
	var where []string
	for i, col := range fk.Columns {
		where = append(where, fmt.Sprintf("x.%s = $%d", pgx.Identifier{col}.Sanitize(), i+1))
	}
	c.CheckQuery = "SELECT 1 FROM " + child + " WHERE " + strings.Join(where, " AND ") + " FOR KEY SHARE OF x"
	if _, err := tx.Exec(ctx, "PREPARE fkr_ri_check ("+strings.Join(types, ", ")+") AS "+c.CheckQuery); err != nil {
		return c, fmt.Errorf("prepare referential check: %w", err)
	}

	key, referenced, err := pickParentKey(ctx, tx, fk)
	if err != nil {
		return c, err
	}
	lits := make([]string, len(fk.RefColumns))
	for i := range lits {
		if key == nil {
			lits[i] = "NULL"
		} else {
			lits[i] = literal(*key[i])
		}
	}
	var raw []byte
	if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE fkr_ri_check("+strings.Join(lits, ", ")+")", simple).Scan(&raw); err != nil {
		return c, fmt.Errorf("explain referential check: %w", err)
	}
	ex, err := parseExplain(raw)
	if err != nil {
		return c, err
	}
	c.CheckMS = ex.ExecutionTime
	c.SharedHit, c.SharedRead = ex.Plan.SharedHit, ex.Plan.SharedRead
	if n := ex.Plan.find(fk.Table.Name); n != nil {
		c.ScanNode, c.Index, c.RowsExamined = n.NodeType, n.indexName(), n.RowsRemoved
		c.SeqScan = strings.Contains(n.NodeType, "Seq Scan")
	}
	if c.ScanNode == "" {
		c.ScanNode = ex.Plan.NodeType
	}

	// The parent-side delete: the number an application deleting a parent
	// row actually pays for this constraint.
	switch {
	case !hasConstraint(ctx, tx, fk):
		c.DeleteNote = "constraint not present: parent delete not measured"
	case key == nil:
		c.DeleteNote = "parent table is empty: parent delete not measured"
	case referenced && fk.EffectiveOnDelete() != plan.ActionCascade && fk.EffectiveOnDelete() != plan.ActionSetNull && fk.EffectiveOnDelete() != plan.ActionSetDefault:
		c.DeleteNote = "every parent key is referenced and " + string(fk.EffectiveOnDelete()) + " forbids deleting one: parent delete not measured"
	default:
		if err := measureDelete(ctx, tx, fk, lits, &c); err != nil {
			return c, err
		}
	}
	return c, nil
}

func measureDelete(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey, lits []string, c *perf.PlanCheck) error {
	if _, err := tx.Exec(ctx, "SAVEPOINT fkr_delete"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	var where []string
	for i, col := range fk.RefColumns {
		where = append(where, pgx.Identifier{col}.Sanitize()+" = "+lits[i])
	}
	var raw []byte
	err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) DELETE FROM ONLY "+fk.RefTable.Sanitize()+" WHERE "+strings.Join(where, " AND "), simple).Scan(&raw)
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT fkr_delete"); rerr != nil {
		return fmt.Errorf("rollback to savepoint: %w", rerr)
	}
	if err != nil {
		// Another constraint on the parent (or a lock held by the
		// application) refused the delete: report, do not fail the phase.
		c.DeleteNote = "parent delete not measured: " + err.Error()
		if dbx.IsCode(err, dbx.CodeLockNotAvailable) {
			c.DeleteNote = "parent delete not measured: parent row locked by the application (lock_timeout)"
		}
		return nil
	}
	ex, err := parseExplain(raw)
	if err != nil {
		return err
	}
	for _, t := range ex.Triggers {
		if t.ConstraintName == fk.Name {
			c.DeleteMS += t.Time
			c.DeleteCalls += t.Calls
		}
	}
	if c.DeleteCalls == 0 {
		c.DeleteNote = "the delete fired no trigger of this constraint"
	}
	return nil
}

func hasConstraint(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey) bool {
	var ok bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE contype = 'f' AND conname = $1
		AND conrelid = (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $2 AND c.relname = $3))`,
		fk.Name, fk.Table.Schema, fk.Table.Name).Scan(&ok)
	return err == nil && ok
}

// refTypes returns the SQL types of the referenced columns (the RI trigger
// declares its parameters with them), as format_type spells them.
func refTypes(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey) ([]string, error) {
	out := make([]string, len(fk.RefColumns))
	for i, col := range fk.RefColumns {
		err := tx.QueryRow(ctx, `SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
			JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND a.attname = $3 AND a.attnum > 0 AND NOT a.attisdropped`,
			fk.RefTable.Schema, fk.RefTable.Name, col).Scan(&out[i])
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("referenced column %s.%s does not exist", fk.RefTable, plan.QuoteIfNeeded(col))
		}
		if err != nil {
			return nil, fmt.Errorf("type of %s.%s: %w", fk.RefTable, plan.QuoteIfNeeded(col), err)
		}
	}
	return out, nil
}

// pickParentKey returns one parent key as text, preferring one that no child
// row references (so that deleting it is allowed under RESTRICT / NO
// ACTION). nil when the parent table is empty.
func pickParentKey(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey) ([]*string, bool, error) {
	var sel, join []string
	for i, col := range fk.RefColumns {
		sel = append(sel, "p."+pgx.Identifier{col}.Sanitize()+"::text")
		join = append(join, "c."+pgx.Identifier{fk.Columns[i]}.Sanitize()+" = p."+pgx.Identifier{col}.Sanitize())
	}
	parent := "ONLY " + fk.RefTable.Sanitize() + " p"
	scan := func(q string) ([]*string, error) {
		vals := make([]*string, len(sel))
		dest := make([]any, len(sel))
		for i := range vals {
			dest[i] = &vals[i]
		}
		if err := tx.QueryRow(ctx, q, simple).Scan(dest...); err != nil {
			return nil, err
		}
		return vals, nil
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT fkr_pick"); err != nil {
		return nil, false, fmt.Errorf("savepoint: %w", err)
	}
	key, err := scan("SELECT " + strings.Join(sel, ", ") + " FROM " + parent +
		" WHERE NOT EXISTS (SELECT 1 FROM ONLY " + fk.Table.Sanitize() + " c WHERE " + strings.Join(join, " AND ") + ") LIMIT 1")
	if err == nil {
		return key, false, nil
	}
	// No unreferenced key, or the anti-join hit the statement timeout on a
	// huge unindexed child: any key will do for the lookup.
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT fkr_pick"); rerr != nil {
		return nil, false, fmt.Errorf("rollback to savepoint: %w", rerr)
	}
	if !errors.Is(err, pgx.ErrNoRows) && !dbx.IsCode(err, dbx.CodeQueryCanceled) {
		return nil, false, fmt.Errorf("pick a parent key of %s: %w", fk.RefTable, err)
	}
	key, err = scan("SELECT " + strings.Join(sel, ", ") + " FROM " + parent + " LIMIT 1")
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pick a parent key of %s: %w", fk.RefTable, err)
	}
	return key, true, nil
}

// simple sends one-off statements (values inlined as literals) with the
// simple protocol, so they do not fill the pooled session's statement cache.
const simple = pgx.QueryExecModeSimpleProtocol

// literal quotes a text value as a SQL string literal (the transaction
// pins standard_conforming_strings = on, so only quotes need doubling).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

type explainOut struct {
	Plan          planNode  `json:"Plan"`
	ExecutionTime float64   `json:"Execution Time"`
	Triggers      []trigger `json:"Triggers"`
}

type trigger struct {
	TriggerName    string  `json:"Trigger Name"`
	ConstraintName string  `json:"Constraint Name"`
	Relation       string  `json:"Relation"`
	Time           float64 `json:"Time"`
	Calls          int64   `json:"Calls"`
}

type planNode struct {
	NodeType    string     `json:"Node Type"`
	Relation    string     `json:"Relation Name"`
	IndexName   string     `json:"Index Name"`
	SharedHit   int64      `json:"Shared Hit Blocks"`
	SharedRead  int64      `json:"Shared Read Blocks"`
	RowsRemoved int64      `json:"Rows Removed by Filter"`
	Plans       []planNode `json:"Plans"`
}

// find returns the node that reads relation (depth first).
func (n *planNode) find(relation string) *planNode {
	if n.Relation == relation {
		return n
	}
	for i := range n.Plans {
		if f := n.Plans[i].find(relation); f != nil {
			return f
		}
	}
	return nil
}

// seqScans lists the relations read by a sequential scan.
func (n *planNode) seqScans(out []string) []string {
	if strings.Contains(n.NodeType, "Seq Scan") && n.Relation != "" {
		out = append(out, n.Relation)
	}
	for i := range n.Plans {
		out = n.Plans[i].seqScans(out)
	}
	return out
}

// indexName is the index a scan node uses (a bitmap heap scan's lives in
// its Bitmap Index Scan child).
func (n *planNode) indexName() string {
	if n.IndexName != "" {
		return n.IndexName
	}
	for i := range n.Plans {
		if s := n.Plans[i].indexName(); s != "" {
			return s
		}
	}
	return ""
}

func parseExplain(raw []byte) (explainOut, error) {
	var out []explainOut
	if err := json.Unmarshal(raw, &out); err != nil {
		return explainOut{}, fmt.Errorf("parse EXPLAIN output: %w", err)
	}
	if len(out) == 0 {
		return explainOut{}, errors.New("empty EXPLAIN output")
	}
	return out[0], nil
}

// Workload explains every statement of every operation with one
// sample of its parameters. Each operation runs in its own transaction,
// statements in order (later ones may depend on earlier ones), and is
// rolled back. A failing statement is reported, not fatal.
func Workload(ctx context.Context, pool *pgxpool.Pool, ops []loadgen.SampleOp, o Options) ([]perf.QueryCheck, error) {
	o = o.normalised()
	var out []perf.QueryCheck
	for _, op := range ops {
		checks, err := explainOp(ctx, pool, op, o)
		if err != nil {
			return nil, fmt.Errorf("explain %s: %w", op.Operation, err)
		}
		out = append(out, checks...)
	}
	return out, nil
}

func explainOp(ctx context.Context, pool *pgxpool.Pool, op loadgen.SampleOp, o Options) ([]perf.QueryCheck, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := dbx.Apply(ctx, tx, o.settings(), dbx.Transaction); err != nil {
		return nil, err
	}
	var out []perf.QueryCheck
	for i, st := range op.Statements {
		q := perf.QueryCheck{Operation: op.Operation, Statement: i + 1, SQL: st.SQL}
		var raw []byte
		// The sample values are text: the simple protocol inlines them as
		// literals the server coerces to each column's type.
		args := append([]any{pgx.QueryExecModeSimpleProtocol}, st.Args...)
		if err := tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+st.SQL, args...).Scan(&raw); err != nil {
			q.Error = err.Error()
			out = append(out, q)
			break // the transaction is aborted; later statements cannot run
		}
		ex, err := parseExplain(raw)
		if err != nil {
			return nil, err
		}
		q.ExecutionMS, q.SharedHit, q.SharedRead = ex.ExecutionTime, ex.Plan.SharedHit, ex.Plan.SharedRead
		q.SeqScans = ex.Plan.seqScans(nil)
		for _, t := range ex.Triggers {
			if t.ConstraintName != "" {
				if q.TriggerMS == nil {
					q.TriggerMS = map[string]float64{}
				}
				q.TriggerMS[t.ConstraintName] += t.Time
			}
		}
		out = append(out, q)
	}
	return out, nil
}
