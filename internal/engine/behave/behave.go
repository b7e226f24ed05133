// Package behave proves that each rolled-out foreign key behaves as declared,
// the automated form of the manual constraint tests done after VALIDATE: an orphan
// insert is rejected, deleting (and updating) a referenced parent does what
// ON DELETE / ON UPDATE say.
//
// Every case runs in its own transaction that is always rolled back, on rows
// synthesized from the catalog (existing data is never read for test keys,
// updated or deleted). Explicit values replace serial/identity defaults, so
// no sequence advances. Caveats: a sequence advanced indirectly (a trigger or
// a default calling a function that calls nextval) is not rolled back, and
// triggers with effects outside the transaction (dblink, external calls)
// would fire; NOTIFY is discarded by the rollback. Rows of partitioned
// tables take their partition key values from the leaf partitions' bounds
// (catalog only, see partition.go).
package behave

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Outcome of one case.
type Outcome string

const (
	Passed  Outcome = "passed"
	Failed  Outcome = "failed"
	Skipped Outcome = "skipped"
)

// Case names.
const (
	CaseInsertOrphan = "insert-orphan-rejected"
	// On-delete and on-update cases are named "on-delete-<action>" and
	// "on-update-<action>", e.g. "on-delete-set-null".
)

// Case is one behaviour check of one foreign key.
type Case struct {
	Name    string  `json:"name"`
	Outcome Outcome `json:"outcome"`
	Detail  string  `json:"detail"`
}

// Result holds the cases of one foreign key.
type Result struct {
	FK    string `json:"fk"`
	Cases []Case `json:"cases"`
}

// Passed reports whether no case failed (skipped cases do not fail a key,
// but callers should show them: nothing was proven).
func (r Result) Passed() bool {
	return !slices.ContainsFunc(r.Cases, func(c Case) bool { return c.Outcome == Failed })
}

// ErrBadInput marks a plan naming tables or columns that do not exist; it is
// returned before any test transaction starts.
var ErrBadInput = errors.New("invalid behaviour test input")

// DefaultStatementTimeout bounds each statement of a test transaction when
// the lock policy sets no statement timeout: a behaviour test never runs
// unbounded on a live database.
const DefaultStatementTimeout = 30 * time.Second

// Run tests every foreign key, each case in a transaction that waits for
// locks and runs statements as the rollout's lock policy says (its
// lock_timeout; its statement_timeout, or DefaultStatementTimeout when it
// sets none). The error is reserved for infrastructure failures and bad
// input; a key that misbehaves is a failed case, one whose rows could not
// be synthesized a skipped case with the reason.
func Run(ctx context.Context, pool *pgxpool.Pool, fks []plan.ForeignKey, lock dbx.LockPolicy) ([]Result, error) {
	set := lock.WithDefaults().Settings()
	if set.StatementTimeout <= 0 {
		set.StatementTimeout = DefaultStatementTimeout
	}
	r := &runner{pool: pool, settings: set, s: &synth{tables: map[plan.TableName]*tableInfo{}}}
	if err := r.check(ctx, fks); err != nil {
		return nil, err
	}
	out := make([]Result, 0, len(fks))
	for _, fk := range fks {
		res := Result{FK: fk.ID()}
		for _, spec := range casesFor(fk) {
			c, err := r.inTx(ctx, spec.name, func(ctx context.Context, tx pgx.Tx) (Case, error) { return spec.run(ctx, r, tx, fk) })
			if err != nil {
				return nil, fmt.Errorf("behaviour test %s %s: %w", fk.ID(), spec.name, err)
			}
			res.Cases = append(res.Cases, c)
		}
		out = append(out, res)
	}
	return out, nil
}

type caseSpec struct {
	name string
	run  func(ctx context.Context, r *runner, tx pgx.Tx, fk plan.ForeignKey) (Case, error)
}

func casesFor(fk plan.ForeignKey) []caseSpec {
	del := fk.EffectiveOnDelete()
	specs := []caseSpec{
		{CaseInsertOrphan, func(ctx context.Context, r *runner, tx pgx.Tx, fk plan.ForeignKey) (Case, error) {
			return r.orphan(ctx, tx, fk)
		}},
		{"on-delete-" + slug(del), func(ctx context.Context, r *runner, tx pgx.Tx, fk plan.ForeignKey) (Case, error) {
			return r.parentChange(ctx, tx, fk, false, del)
		}},
	}
	if upd := fk.EffectiveOnUpdate(); upd != plan.ActionNoAction {
		specs = append(specs, caseSpec{"on-update-" + slug(upd), func(ctx context.Context, r *runner, tx pgx.Tx, fk plan.ForeignKey) (Case, error) {
			return r.parentChange(ctx, tx, fk, true, upd)
		}})
	}
	return specs
}

func slug(a plan.Action) string { return strings.ToLower(strings.ReplaceAll(string(a), " ", "-")) }

type runner struct {
	pool     *pgxpool.Pool
	settings dbx.Settings // of every test transaction
	s        *synth
}

// check loads every table and confirms the columns exist, so bad input is
// reported before any test row is written.
func (r *runner) check(ctx context.Context, fks []plan.ForeignKey) error {
	var problems []string
	for _, fk := range fks {
		if fk.Name == "" || len(fk.Columns) == 0 || len(fk.Columns) != len(fk.RefColumns) {
			problems = append(problems, fmt.Sprintf("%s: needs a name and as many columns as ref_columns (got %d and %d)", fk.ID(), len(fk.Columns), len(fk.RefColumns)))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrBadInput, strings.Join(problems, "; "))
	}
	err := dbx.ReadOnly(ctx, r.pool, r.settings.StatementTimeout, func(ctx context.Context, tx pgx.Tx) error {
		for _, fk := range fks {
			for _, side := range []struct {
				t    plan.TableName
				cols []string
			}{{fk.Table, fk.Columns}, {fk.RefTable, fk.RefColumns}} {
				t, err := r.s.table(ctx, tx, side.t)
				if errors.Is(err, errNoTable) {
					problems = append(problems, fmt.Sprintf("%s: table %s does not exist", fk.ID(), side.t))
					continue
				}
				if err != nil {
					return err
				}
				for _, c := range side.cols {
					if _, ok := t.col(c); !ok {
						problems = append(problems, fmt.Sprintf("%s: column %q does not exist in %s", fk.ID(), c, side.t))
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("behaviour test: read catalog: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrBadInput, strings.Join(problems, "; "))
	}
	return nil
}

// inTx runs one case in a transaction that is always rolled back. Deferred
// constraints are made immediate so a violation surfaces at the statement,
// not at a COMMIT that never happens.
func (r *runner) inTx(ctx context.Context, name string, fn func(ctx context.Context, tx pgx.Tx) (Case, error)) (Case, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return Case{}, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := dbx.Apply(ctx, tx, r.settings, dbx.Transaction); err != nil {
		return Case{}, err
	}
	if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
		return Case{}, fmt.Errorf("set constraints all immediate: %w", err)
	}
	c, err := fn(ctx, tx)
	var se *synthError
	if errors.As(err, &se) {
		return Case{Name: name, Outcome: Skipped, Detail: se.reason}, nil
	}
	if err != nil {
		return Case{}, err
	}
	c.Name = name
	return c, nil
}

// parentAndChild inserts a fresh parent row and a child row referencing it.
func (r *runner) parentAndChild(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey) (parent, child row, err error) {
	pt, err := r.s.table(ctx, tx, fk.RefTable)
	if err != nil {
		return row{}, row{}, err
	}
	ct, err := r.s.table(ctx, tx, fk.Table)
	if err != nil {
		return row{}, row{}, err
	}
	// Referenced columns that could come out NULL get explicit values: a
	// NULL key references nothing.
	fixed := values{}
	for _, rc := range fk.RefColumns {
		if c, _ := pt.col(rc); !c.NotNull {
			v, err := generate(c, pt.Allowed[rc], 0)
			if err != nil {
				return row{}, row{}, err
			}
			fixed[rc] = strPtr(v)
		}
	}
	for _, seed := range childSeeds(ct, fk) {
		f := maps.Clone(fixed)
		maps.Copy(f, seed)
		parent, err = r.s.insertRow(ctx, tx, fk.RefTable, f, 0)
		if err == nil || !isSynthFailure(err) {
			break
		}
	}
	if err != nil {
		return row{}, row{}, err
	}
	ref := values{}
	for i, c := range fk.Columns {
		v := parent.returned[fk.RefColumns[i]]
		if v == nil {
			return row{}, row{}, skipf("synthesized parent row in %s has NULL %s", fk.RefTable, fk.RefColumns[i])
		}
		ref[c] = v
	}
	child, err = r.s.insertRow(ctx, tx, fk.Table, ref, 0)
	if err != nil {
		return row{}, row{}, err
	}
	return parent, child, nil
}

// maxSeeds bounds the parent keys tried for a partitioned child.
const maxSeeds = 4

// childSeeds lists parent key values to try when the foreign key's columns
// partition the child, so the child row has a partition to go to: free
// values first when a route leaves them free (a DEFAULT or hash partition:
// random keys meet no existing parent), then values from the bounds (which
// existing parents may already hold). One empty seed otherwise.
func childSeeds(ct *tableInfo, fk plan.ForeignKey) []values {
	var free bool
	var pinned []values
	for _, rt := range ct.Routes {
		seed := values{}
		for i, c := range fk.Columns {
			if k, ok := rt.keys[c]; ok {
				seed[fk.RefColumns[i]] = k.pick()
			}
		}
		switch {
		case len(seed) == 0:
			free = true
		case !hasNull(seed): // a NULL key would reference nothing
			pinned = append(pinned, seed)
		}
	}
	if free || len(pinned) == 0 {
		pinned = append([]values{{}}, pinned...)
	}
	return pinned[:min(len(pinned), maxSeeds)]
}

func hasNull(v values) bool {
	for _, x := range v {
		if x == nil {
			return true
		}
	}
	return false
}

// orphan: a child row whose key matches no parent must be rejected with
// 23503 by this constraint. The same row is first inserted against a real
// parent and removed again, so the only difference in the orphan insert is
// the key, and the rejection can be attributed to the foreign key.
func (r *runner) orphan(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey) (Case, error) {
	parent, child, err := r.parentAndChild(ctx, tx, fk)
	if err != nil {
		return Case{}, err
	}
	ct, pt := r.s.tables[fk.Table], r.s.tables[fk.RefTable]
	// ctid alone would also match rows of other partitions.
	if _, err := tx.Exec(ctx, "DELETE FROM "+fk.Table.Sanitize()+" WHERE tableoid = $1::text::oid AND ctid = $2::text::tid", child.tableoid, child.ctid); err != nil {
		return Case{}, fmt.Errorf("remove control row: %w", err)
	}
	missing, err := absentKey(ctx, tx, pt, ct, fk, parent.returned)
	if err != nil {
		return Case{}, err
	}
	vals := values{}
	for k, v := range child.sent {
		vals[k] = v
	}
	shown := make([]string, len(fk.Columns))
	for i, c := range fk.Columns {
		vals[c] = missing[fk.RefColumns[i]]
		shown[i] = plan.QuoteIfNeeded(c) + "=" + *vals[c]
	}
	sp, err := r.s.savepoint(ctx, tx)
	if err != nil {
		return Case{}, err
	}
	_, err = execInsert(ctx, tx, ct, vals)
	if rerr := rollbackTo(ctx, tx, sp); rerr != nil {
		return Case{}, rerr
	}
	key := strings.Join(shown, ", ")
	by, lerr := violatedFK(ctx, tx, err)
	if lerr != nil {
		return Case{}, lerr
	}
	switch {
	case err == nil:
		d := fmt.Sprintf("row with %s (no such parent in %s) was accepted", key, fk.RefTable)
		if !slices.ContainsFunc(ct.FKs, func(c catalogFK) bool { return c.Name == fk.Name }) {
			d += fmt.Sprintf("; constraint %s does not exist on %s", plan.QuoteIfNeeded(fk.Name), fk.Table)
		}
		return Case{Outcome: Failed, Detail: d}, nil
	case dbx.IsCode(err, dbx.CodeForeignKeyViolation):
		if by != fk.Name {
			return Case{Outcome: Failed, Detail: fmt.Sprintf("orphan row rejected by %s, not by %s", by, fk.Name)}, nil
		}
		return Case{Outcome: Passed, Detail: fmt.Sprintf("row with %s rejected with 23503 by %s", key, fk.Name)}, nil
	case isSynthFailure(err):
		return Case{}, skipf("orphan insert failed for another reason: %v", err)
	}
	return Case{}, fmt.Errorf("orphan insert: %w", err)
}

// parentChange deletes (or re-keys) the parent of a fresh child row and
// checks the declared action happened.
func (r *runner) parentChange(ctx context.Context, tx pgx.Tx, fk plan.ForeignKey, update bool, action plan.Action) (Case, error) {
	parent, child, err := r.parentAndChild(ctx, tx, fk)
	if err != nil {
		return Case{}, err
	}
	ct, pt := r.s.tables[fk.Table], r.s.tables[fk.RefTable]
	where, args := match(pt, fk.RefColumns, parent.returned, 0)
	verb := "delete"
	sql := "DELETE FROM " + fk.RefTable.Sanitize() + " WHERE " + where
	var newKey values
	if update {
		verb = "update"
		if newKey, err = absentKey(ctx, tx, pt, ct, fk, parent.returned); err != nil {
			return Case{}, err
		}
		set, setArgs := assign(pt, fk.RefColumns, newKey, len(args))
		sql = "UPDATE " + fk.RefTable.Sanitize() + " SET " + set + " WHERE " + where
		args = append(args, setArgs...)
	}
	sp, err := r.s.savepoint(ctx, tx)
	if err != nil {
		return Case{}, err
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		if rerr := rollbackTo(ctx, tx, sp); rerr != nil {
			return Case{}, rerr
		}
	}
	by, lerr := violatedFK(ctx, tx, err)
	if lerr != nil {
		return Case{}, lerr
	}

	if action == plan.ActionRestrict || action == plan.ActionNoAction {
		switch {
		case err == nil:
			return Case{Outcome: Failed, Detail: fmt.Sprintf("referenced parent %s succeeded; ON %s %s should reject it", verb, strings.ToUpper(verb), action)}, nil
		case dbx.IsCode(err, dbx.CodeForeignKeyViolation) && by == fk.Name:
			return Case{Outcome: Passed, Detail: fmt.Sprintf("parent %s rejected with 23503 by %s", verb, fk.Name)}, nil
		case dbx.IsCode(err, dbx.CodeForeignKeyViolation):
			return Case{Outcome: Failed, Detail: fmt.Sprintf("parent %s rejected by %s, not by %s", verb, by, fk.Name)}, nil
		case isSynthFailure(err):
			return Case{}, skipf("parent %s failed for another reason: %v", verb, err)
		}
		return Case{}, fmt.Errorf("parent %s: %w", verb, err)
	}
	if err != nil {
		if isSynthFailure(err) {
			return Case{Outcome: Failed, Detail: fmt.Sprintf("parent %s failed, ON %s %s should allow it: %v", verb, strings.ToUpper(verb), action, err)}, nil
		}
		return Case{}, fmt.Errorf("parent %s: %w", verb, err)
	}
	if tag.RowsAffected() != 1 {
		return Case{}, skipf("parent %s touched %d rows, want 1", verb, tag.RowsAffected())
	}

	id := identity(ct, fk.Columns, child)
	if id == nil {
		if action == plan.ActionCascade && !update {
			// No column outside the key identifies the child: fall back to
			// "no row still carries the deleted (random, fresh) key".
			w, a := match(ct, fk.Columns, child.returned, 0)
			var n int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+fk.Table.Sanitize()+" WHERE "+w, a...).Scan(&n); err != nil {
				return Case{}, fmt.Errorf("count children: %w", err)
			}
			if n == 0 {
				return Case{Outcome: Passed, Detail: "no child row carries the deleted key any more"}, nil
			}
			return Case{Outcome: Failed, Detail: fmt.Sprintf("%d child row(s) still reference the deleted parent", n)}, nil
		}
		return Case{}, skipf("child row in %s cannot be identified: no primary key or other non-null column outside the foreign key", fk.Table)
	}
	w, a := match(ct, keys(id), id, 0)
	// For SET DEFAULT the expected values are the columns' defaults,
	// evaluated by the server from the catalog's own expressions.
	sel := make([]string, 0, 2*len(fk.Columns))
	for _, c := range fk.Columns {
		col, _ := ct.col(c)
		def := "NULL"
		if col.Default != "" {
			def = "(" + col.Default + ")"
		}
		q := pgx.Identifier{c}.Sanitize()
		sel = append(sel, q+"::text", fmt.Sprintf("(%s IS NOT DISTINCT FROM %s::%s)", q, def, col.Type))
	}
	rows, err := tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+fk.Table.Sanitize()+" WHERE "+w, a...)
	if err != nil {
		return Case{}, fmt.Errorf("read child row: %w", err)
	}
	var found int
	got := make([]*string, len(fk.Columns))
	isDefault := true
	for rows.Next() {
		found++
		dest := make([]any, 0, 2*len(fk.Columns))
		defs := make([]bool, len(fk.Columns))
		for i := range fk.Columns {
			dest = append(dest, &got[i], &defs[i])
		}
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return Case{}, fmt.Errorf("read child row: %w", err)
		}
		for _, d := range defs {
			isDefault = isDefault && d
		}
	}
	if err := rows.Err(); err != nil {
		return Case{}, fmt.Errorf("read child row: %w", err)
	}

	switch {
	case action == plan.ActionCascade && !update:
		if found == 0 {
			return Case{Outcome: Passed, Detail: "child row deleted with its parent"}, nil
		}
		return Case{Outcome: Failed, Detail: "child row still present after its parent was deleted"}, nil
	case found != 1:
		return Case{Outcome: Failed, Detail: fmt.Sprintf("expected the child row to survive the parent %s, found %d", verb, found)}, nil
	case action == plan.ActionCascade: // on update
		for i, c := range fk.Columns {
			want := newKey[fk.RefColumns[i]]
			if got[i] == nil || *got[i] != *want {
				return Case{Outcome: Failed, Detail: fmt.Sprintf("child %s is %s, want the parent's new key %s", c, nullableText(got[i]), *want)}, nil
			}
		}
		return Case{Outcome: Passed, Detail: "child key followed the parent's new key"}, nil
	case action == plan.ActionSetNull:
		for i, c := range fk.Columns {
			if got[i] != nil {
				return Case{Outcome: Failed, Detail: fmt.Sprintf("child %s is %s, want NULL", c, *got[i])}, nil
			}
		}
		return Case{Outcome: Passed, Detail: "child key set to NULL"}, nil
	case action == plan.ActionSetDefault:
		if !isDefault {
			return Case{Outcome: Failed, Detail: fmt.Sprintf("child key is %s, not the column defaults", showAll(got))}, nil
		}
		return Case{Outcome: Passed, Detail: fmt.Sprintf("child key set to its default (%s)", showAll(got))}, nil
	}
	return Case{}, fmt.Errorf("unknown action %q", action)
}

// absentKeyTries bounds the keys absentKey proposes.
const absentKeyTries = 8

// absentKey generates values for fk's referenced columns that no parent row
// has (checked, a few tries). Columns that partition either table keep the
// values of base (a row that found its partitions) while another column
// can make the key absent; when all of them partition, the values come
// from the partition bounds.
func absentKey(ctx context.Context, tx pgx.Tx, pt, ct *tableInfo, fk plan.ForeignKey, base values) (values, error) {
	cols := fk.RefColumns
	pinned := map[string]bool{}
	for i, rc := range cols {
		if pt.PartCols[rc] || ct.PartCols[fk.Columns[i]] {
			pinned[rc] = true
		}
	}
	allPinned := len(pinned) == len(cols)
	for try := range absentKeyTries {
		v := values{}
		for i, c := range cols {
			switch {
			case pinned[c] && !allPinned:
				v[c] = base[c]
				continue
			case pinned[c]:
				if k, ok := boundChoice(pt, ct, c, fk.Columns[i], try); ok {
					v[c] = k.pick()
					continue
				}
			}
			col, _ := pt.col(c)
			// Attempt 0 values, never a CHECK list's member (those may exist).
			g, err := generate(col, nil, 0)
			if err != nil {
				return nil, err
			}
			v[c] = strPtr(g)
		}
		w, a := match(pt, cols, v, 0)
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+pt.Name.Sanitize()+" WHERE "+w+")", a...).Scan(&exists); err != nil {
			if isSynthFailure(err) {
				return nil, skipf("cannot make a key absent from %s: %v", pt.Name, err)
			}
			return nil, fmt.Errorf("probe parent key: %w", err)
		}
		if !exists {
			return v, nil
		}
	}
	return nil, skipf("cannot find a key absent from %s (%s)", pt.Name, strings.Join(cols, ", "))
}

// boundChoice is the try-th candidate for referenced column rc (key of pt)
// with child column c (key of ct): the non-NULL values the partition bounds
// give, after a generated value (ok false) when both tables have a route
// leaving the column free (a DEFAULT or hash partition, or no partitioning
// by it), since a random value is the likeliest to be absent.
func boundChoice(pt, ct *tableInfo, rc, c string, try int) (k keyChoice, ok bool) {
	choices := slices.DeleteFunc(append(pt.choicesFor(rc), ct.choicesFor(c)...), func(k keyChoice) bool { return !k.span && k.val == nil })
	free := pt.leavesFree(rc) && ct.leavesFree(c)
	n := len(choices) + boolInt(free)
	if n == 0 {
		return keyChoice{}, false
	}
	i := try % n
	if free {
		if i == 0 {
			return keyChoice{}, false
		}
		i--
	}
	return choices[i], true
}

// identity picks columns that find the child row again after its foreign
// key columns changed: the primary key minus the FK columns, else every
// other non-NULL comparable column of the inserted row.
func identity(t *tableInfo, fkCols []string, r row) values {
	id := values{}
	for _, c := range t.PK {
		if !slices.Contains(fkCols, c) && r.returned[c] != nil {
			id[c] = r.returned[c]
		}
	}
	if len(id) > 0 {
		return id
	}
	for _, c := range t.Columns {
		if slices.Contains(fkCols, c.Name) || r.returned[c.Name] == nil || !hasEquality(c) {
			continue
		}
		id[c.Name] = r.returned[c.Name]
	}
	if len(id) == 0 {
		return nil
	}
	return id
}

// hasEquality excludes types without a plain equality operator.
func hasEquality(c column) bool {
	switch c.BaseType {
	case "json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle":
		return false
	}
	return c.TypType != "p"
}

func keys(v values) []string {
	k := make([]string, 0, len(v))
	for c := range v {
		k = append(k, c)
	}
	slices.Sort(k)
	return k
}

// match builds "col = $n::text::type AND ..." for cols with the given values
// (parameters numbered after offset).
func match(t *tableInfo, cols []string, v values, offset int) (string, []any) {
	parts := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, c := range cols {
		col, _ := t.col(c)
		parts[i] = fmt.Sprintf("%s = $%d::text::%s", pgx.Identifier{c}.Sanitize(), offset+i+1, col.Type)
		args[i] = v[c]
	}
	return strings.Join(parts, " AND "), args
}

func assign(t *tableInfo, cols []string, v values, offset int) (string, []any) {
	w, a := match(t, cols, v, offset)
	return strings.ReplaceAll(w, " AND ", ", "), a
}

// rootConstraintSQL follows conparentid from a constraint to the one that
// was declared: PostgreSQL copies a foreign key onto each partition of a
// partitioned child, and for each partition of a partitioned parent adds
// one more on the child, named e.g. "..._fkey1" (PostgreSQL 15).
const rootConstraintSQL = `
WITH RECURSIVE up AS (
    SELECT k.oid, k.conname, k.conparentid, 0 AS depth FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname = $2 AND k.conname = $3 AND k.contype = 'f'
  UNION ALL
    SELECT p.oid, p.conname, p.conparentid, up.depth + 1 FROM pg_constraint p JOIN up ON p.oid = up.conparentid
)
SELECT conname FROM up WHERE conparentid = 0 ORDER BY depth DESC LIMIT 1`

// violatedFK names the declared foreign key a 23503 came from ("" for
// other errors). tx must be usable (rolled back to a savepoint).
func violatedFK(ctx context.Context, tx pgx.Tx, err error) (string, error) {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != dbx.CodeForeignKeyViolation {
		return "", nil
	}
	if pg.SchemaName == "" || pg.TableName == "" {
		return pg.ConstraintName, nil
	}
	var root string
	qerr := tx.QueryRow(ctx, rootConstraintSQL, pg.SchemaName, pg.TableName, pg.ConstraintName).Scan(&root)
	if errors.Is(qerr, pgx.ErrNoRows) {
		return pg.ConstraintName, nil
	}
	if qerr != nil {
		return "", fmt.Errorf("look up constraint %s on %s.%s: %w", pg.ConstraintName, pg.SchemaName, pg.TableName, qerr)
	}
	return root, nil
}

func nullableText(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

func showAll(v []*string) string {
	out := make([]string, len(v))
	for i, s := range v {
		out[i] = nullableText(s)
	}
	return strings.Join(out, ", ")
}
