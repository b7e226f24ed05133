package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// invoiceSchema: the rollout adds invoice.customer_id → customer (NOT
// VALID); invoices 101..105 are its orphans. Existing keys into invoice:
// invoice_line (NO ACTION, itself referenced by line_note ON DELETE
// CASCADE), payment (CASCADE), reminder (SET NULL), dispute (NOT VALID, NO
// ACTION) and invoice.replaces (a self-reference: 106 replaces orphan 101,
// 107 replaces 106). invoice_line has an identity and a generated column and
// a user trigger that logs deletes into audit_log.
const invoiceSchema = `
CREATE TABLE customer (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO customer SELECT g, 'customer ' || g FROM generate_series(1, 3) g;
CREATE TABLE invoice (id int PRIMARY KEY, customer_id int, replaces int REFERENCES invoice (id), total numeric(10,2), note text);
INSERT INTO invoice (id, customer_id, total, note) SELECT g, 1 + g % 3, g * 10.5, 'invoice "' || g || '"' FROM generate_series(1, 10) g;
INSERT INTO invoice (id, customer_id, total) SELECT g, 800 + g, g FROM generate_series(101, 105) g;
INSERT INTO invoice (id, customer_id, replaces) VALUES (106, 1, 101), (107, NULL, 106);
CREATE TABLE invoice_line (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id int NOT NULL REFERENCES invoice (id),
    amount     numeric(10,2),
    doubled    numeric GENERATED ALWAYS AS (amount * 2) STORED
);
CREATE INDEX ON invoice_line (invoice_id);
INSERT INTO invoice_line (invoice_id, amount) SELECT i, i + l / 10.0 FROM generate_series(1, 10) i, generate_series(1, 3) l;
INSERT INTO invoice_line (invoice_id, amount) SELECT i, l FROM generate_series(101, 107) i, generate_series(1, 3) l;
CREATE TABLE line_note (id serial PRIMARY KEY, line_id bigint NOT NULL REFERENCES invoice_line (id) ON DELETE CASCADE, body text);
INSERT INTO line_note (line_id, body) SELECT id, 'note on ' || id FROM invoice_line WHERE invoice_id IN (1, 101, 102, 107);
CREATE TABLE payment (id int PRIMARY KEY, invoice_id int NOT NULL REFERENCES invoice (id) ON DELETE CASCADE, amount numeric);
INSERT INTO payment VALUES (1, 101, 5), (2, 103, 6), (3, 5, 7);
CREATE TABLE reminder (id int PRIMARY KEY, invoice_id int REFERENCES invoice (id) ON DELETE SET NULL, sent date);
INSERT INTO reminder VALUES (1, 101, '2026-01-01'), (2, 102, '2026-01-02'), (3, 104, NULL), (4, 6, '2026-01-04'), (5, 107, '2026-01-05');
CREATE TABLE dispute (id int PRIMARY KEY, invoice_id int, reason text);
INSERT INTO dispute VALUES (1, 9999, 'legacy'), (2, 105, 'wrong'), (3, 2, 'late');
ALTER TABLE dispute ADD CONSTRAINT dispute_invoice_fk FOREIGN KEY (invoice_id) REFERENCES invoice (id) NOT VALID;
CREATE TABLE audit_log (id serial PRIMARY KEY, tbl text, old jsonb);
CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO audit_log (tbl, old) VALUES (TG_TABLE_NAME, to_jsonb(OLD)); RETURN OLD; END $$;
CREATE TRIGGER invoice_line_audit AFTER DELETE ON invoice_line FOR EACH ROW EXECUTE FUNCTION log_delete();
ALTER TABLE invoice ADD CONSTRAINT invoice_customer_fk FOREIGN KEY (customer_id) REFERENCES customer (id) NOT VALID;
`

var invoiceTables = []string{"customer", "invoice", "invoice_line", "line_note", "payment", "reminder", "dispute"}

func invoiceFK() plan.ForeignKey {
	return plan.ForeignKey{Name: "invoice_customer_fk", Table: tn("public", "invoice"), Columns: []string{"customer_id"},
		RefTable: tn("public", "customer"), RefColumns: []string{"id"}}
}

// wantInvoiceTables is what removing invoices 101..105 with their
// dependents does: invoice 106 and 107 (replacing them), 21 lines, 9 notes
// (6 on the orphans' lines, 3 on 107's), 2 payments and 1 dispute deleted,
// 4 reminders nulled.
var wantInvoiceTables = []TableChange{
	{Table: "public.invoice", Deleted: 7},
	{Table: "public.dispute", Deleted: 1},
	{Table: "public.invoice_line", Deleted: 21},
	{Table: "public.line_note", Deleted: 9},
	{Table: "public.payment", Deleted: 2},
	{Table: "public.reminder", Updated: 4},
}

type tableSum struct {
	Count int64
	MD5   string
}

// checksums is count(*) and an md5 over the ordered row text per table.
func checksums(t *testing.T, db *pgtest.DB, tables []string) map[string]tableSum {
	t.Helper()
	out := map[string]tableSum{}
	for _, tbl := range tables {
		var s tableSum
		require.NoError(t, db.Pool.QueryRow(context.Background(),
			`SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM `+tbl+` t`).Scan(&s.Count, &s.MD5))
		out[tbl] = s
	}
	return out
}

func perTable(changes []TableChange) map[string]int64 {
	out := map[string]int64{}
	for _, c := range changes {
		if c.Deleted > 0 {
			out[c.Table+" delete"] = c.Deleted
		}
		if c.Updated > 0 {
			out[c.Table+" set_null"] = c.Updated
		}
	}
	return out
}

func TestImpactCountsDependents(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, invoiceSchema)
	before := checksums(t, db, invoiceTables)

	rep, err := Impact(ctx, db.Pool, invoiceFK(), ModeDelete)
	require.NoError(t, err)
	assert.Equal(t, int64(5), rep.Orphans)
	assert.True(t, rep.FKColumnsNullable)
	assert.True(t, rep.HasPrimaryKey)
	d := func(table, con, on string, validated bool, effect string, blocks bool, rows int64, depth int) Dependent {
		refs := "public.invoice"
		if table == "line_note" {
			refs = "public.invoice_line"
		}
		return Dependent{Table: "public." + table, Constraint: con, References: refs, OnDelete: on, Validated: validated,
			Effect: effect, Blocks: blocks, Rows: rows, Depth: depth}
	}
	assert.Equal(t, []Dependent{
		d("dispute", "dispute_invoice_fk", "NO ACTION", false, "delete", true, 1, 1),
		d("invoice", "invoice_replaces_fkey", "NO ACTION", true, "delete", true, 1, 1),
		d("invoice_line", "invoice_line_invoice_id_fkey", "NO ACTION", true, "delete", true, 15, 1),
		d("payment", "payment_invoice_id_fkey", "CASCADE", true, "delete", false, 2, 1),
		d("reminder", "reminder_invoice_id_fkey", "SET NULL", true, "set_null", false, 3, 1),
		d("invoice", "invoice_replaces_fkey", "NO ACTION", true, "delete", true, 1, 2),
		d("invoice_line", "invoice_line_invoice_id_fkey", "NO ACTION", true, "delete", true, 3, 2),
		d("line_note", "line_note_line_id_fkey", "CASCADE", true, "delete", false, 6, 2),
		d("invoice_line", "invoice_line_invoice_id_fkey", "NO ACTION", true, "delete", true, 3, 3),
		d("reminder", "reminder_invoice_id_fkey", "SET NULL", true, "set_null", false, 1, 3),
		d("line_note", "line_note_line_id_fkey", "CASCADE", true, "delete", false, 3, 4),
	}, rep.Dependents)
	assert.Equal(t, wantInvoiceTables, rep.Tables)
	assert.Equal(t, []Trigger{{Table: "public.invoice_line", Name: "invoice_line_audit", Timing: "AFTER", Level: "ROW",
		Events: []string{"DELETE"}, Function: "public.log_delete", Enabled: true}}, rep.Triggers, "user triggers only, not the RI ones")

	del := rep.Choice(ModeDelete)
	assert.False(t, del.Possible)
	assert.Contains(t, del.Reason, "public.invoice_line via invoice_line_invoice_id_fkey (NO ACTION, blocks): 15 row(s) at depth 1")
	assert.Contains(t, del.Reason, "public.dispute via dispute_invoice_fk (NO ACTION, blocks, NOT VALID): 1 row(s)")
	assert.Equal(t, Choice{Mode: ModeDeleteWithDependents, Possible: true, Rows: 44}, rep.Choice(ModeDeleteWithDependents))
	assert.Equal(t, Choice{Mode: ModeSetNull, Possible: true, Rows: 5}, rep.Choice(ModeSetNull))

	// set_null never cascades: its impact is the orphans nulled.
	sn, err := Impact(ctx, db.Pool, invoiceFK(), ModeSetNull)
	require.NoError(t, err)
	assert.Equal(t, []TableChange{{Table: "public.invoice", Updated: 5}}, sn.Tables)
	assert.Equal(t, rep.Choices, sn.Choices)

	// Plain data through JSON (Temporal payloads).
	b, err := json.Marshal(rep)
	require.NoError(t, err)
	var back ImpactReport
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, rep, back)
	assert.Contains(t, string(b), `"choices":[{"mode":"delete","possible":false,"reason":"deleting the orphans`)

	assert.Equal(t, before, checksums(t, db, invoiceTables), "Impact changes nothing")
}

// Counts hold when the orphans have nothing depending on them, and when
// there are none.
func TestImpactWithoutDependents(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, invoiceSchema)
	db.Exec(t, `UPDATE invoice SET customer_id = 1 WHERE id BETWEEN 102 AND 105`) // 101 stays an orphan
	db.Exec(t, `DELETE FROM reminder WHERE invoice_id = 101; DELETE FROM payment WHERE invoice_id = 101;
		DELETE FROM invoice_line WHERE invoice_id IN (101, 106, 107); UPDATE invoice SET replaces = NULL`)
	rep, err := Impact(ctx, db.Pool, invoiceFK(), ModeDelete)
	require.NoError(t, err)
	assert.Equal(t, int64(1), rep.Orphans)
	assert.Empty(t, rep.Dependents)
	assert.Equal(t, []TableChange{{Table: "public.invoice", Deleted: 1}}, rep.Tables)
	assert.Equal(t, Choice{Mode: ModeDelete, Possible: true, Rows: 1}, rep.Choice(ModeDelete))
	dwd := rep.Choice(ModeDeleteWithDependents)
	assert.False(t, dwd.Possible)
	assert.Contains(t, dwd.Reason, "nothing references the orphan rows (choose delete)")

	db.Exec(t, `UPDATE invoice SET customer_id = 2 WHERE id = 101`)
	rep, err = Impact(ctx, db.Pool, invoiceFK(), ModeDelete)
	require.NoError(t, err)
	assert.Zero(t, rep.Orphans)
	assert.Equal(t, []TableChange{{Table: "public.invoice"}}, rep.Tables)
}

// Which choices are possible, and why not, for tables shaped otherwise.
func TestImpactChoices(t *testing.T) {
	cases := []struct {
		name   string
		schema string
		fk     plan.ForeignKey
		// want maps a mode to "" (possible) or a fragment of the reason.
		want map[Mode]string
	}{
		{
			name:   "NOT NULL column",
			schema: `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, pid int NOT NULL); INSERT INTO child VALUES (1, 7);`,
			fk:     plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			want: map[Mode]string{ModeDelete: "", ModeDeleteWithDependents: "nothing references the orphan rows",
				ModeSetNull: "set_null: column(s) pid of public.child are NOT NULL"},
		},
		{
			name:   "no primary key",
			schema: `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (pid int); INSERT INTO child VALUES (7);`,
			fk:     plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			want:   map[Mode]string{ModeDelete: "", ModeSetNull: "public.child has no primary key"},
		},
		{
			name: "SET DEFAULT dependent",
			schema: `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, pid int);
				CREATE TABLE grandchild (id int PRIMARY KEY, cid int DEFAULT 0 REFERENCES child ON DELETE SET DEFAULT);
				INSERT INTO child VALUES (0, NULL), (1, 7); INSERT INTO grandchild VALUES (1, 1);`,
			fk: plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			want: map[Mode]string{ModeDelete: "public.grandchild via grandchild_cid_fkey (SET DEFAULT): 1 row(s) at depth 1",
				ModeDeleteWithDependents: "ON DELETE SET DEFAULT dependents are not supported", ModeSetNull: ""},
		},
		{
			name: "SET NULL dependent without primary key",
			schema: `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, pid int);
				CREATE TABLE grandchild (cid int REFERENCES child ON DELETE SET NULL);
				INSERT INTO child VALUES (1, 7); INSERT INTO grandchild VALUES (1);`,
			fk:   plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			want: map[Mode]string{ModeDeleteWithDependents: "SET NULL dependents through grandchild_cid_fkey: public.grandchild has no primary key"},
		},
		{
			name: "FK columns referenced by another key",
			schema: `CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, pid int UNIQUE);
				CREATE TABLE other (id int PRIMARY KEY, child_pid int REFERENCES child (pid));
				INSERT INTO child VALUES (1, 7);`,
			fk:   plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}},
			want: map[Mode]string{ModeDelete: "", ModeSetNull: "column(s) of public.child are referenced by other_child_pid_fkey of public.other"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := pgtest.New(t)
			db.Exec(t, tc.schema)
			rep, err := Impact(context.Background(), db.Pool, tc.fk, ModeDelete)
			require.NoError(t, err)
			require.Len(t, rep.Choices, 3)
			for mode, want := range tc.want {
				c := rep.Choice(mode)
				if want == "" {
					assert.True(t, c.Possible, "%s: %s", mode, c.Reason)
				} else {
					assert.False(t, c.Possible, mode)
					assert.Contains(t, c.Reason, want, mode)
				}
			}
		})
	}
}

// A plain delete is refused before anything changes when the orphans have
// dependents, naming them; delete_with_dependents then removes exactly what
// Impact counted, one quarantine row per row removed or changed, and
// restore (after the constraint is rolled back) brings every row back.
func TestRemediateDeleteWithDependents(t *testing.T) {
	for _, batch := range []int{1, 2, 1000} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, invoiceSchema)
			fk := invoiceFK()
			before := checksums(t, db, invoiceTables)

			_, err := Remediate(ctx, db.Pool, fk, ModeDelete, "r-1", RemediateOptions{BatchSize: batch})
			require.ErrorIs(t, err, ErrDependents)
			assert.Contains(t, err.Error(), "public.invoice_line via invoice_line_invoice_id_fkey (NO ACTION, blocks): 15 row(s)")
			assert.Equal(t, before, checksums(t, db, invoiceTables), "nothing changed")
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_namespace WHERE nspname = 'fkrollout'`), "refused before the quarantine exists")

			rep, err := Impact(ctx, db.Pool, fk, ModeDeleteWithDependents)
			require.NoError(t, err)
			require.True(t, rep.Choice(ModeDeleteWithDependents).Possible)
			res, err := Remediate(ctx, db.Pool, fk, ModeDeleteWithDependents, "r-1", RemediateOptions{BatchSize: batch, RunID: "run-1"})
			require.NoError(t, err)
			assert.Equal(t, int64(5), res.Affected)
			assert.Equal(t, int64(44), res.Quarantined)
			assert.Equal(t, (5+batch-1)/batch, res.Batches)

			after := checksums(t, db, invoiceTables)
			for _, c := range rep.Tables {
				tbl := c.Table[len("public."):]
				assert.Equal(t, before[tbl].Count-c.Deleted, after[tbl].Count, tbl)
			}
			assert.Equal(t, perTable(rep.Tables), pgtest.QuarantineCounts(t, db, "r-1"), "one quarantine row per row removed or changed")
			// Exactly the impacted rows: the rest is untouched.
			assert.Equal(t, int64(10), db.Count(t, `SELECT count(*) FROM invoice WHERE id <= 10`))
			assert.Equal(t, int64(30), db.Count(t, `SELECT count(*) FROM invoice_line`))
			assert.Equal(t, int64(3), db.Count(t, `SELECT count(*) FROM line_note`))
			assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM payment WHERE id = 3`))
			assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM reminder WHERE invoice_id = 6`))
			assert.Equal(t, int64(4), db.Count(t, `SELECT count(*) FROM reminder WHERE invoice_id IS NULL`))
			assert.Equal(t, int64(2), db.Count(t, `SELECT count(*) FROM dispute WHERE id IN (1, 3)`))
			assert.Equal(t, int64(21), db.Count(t, `SELECT count(*) FROM audit_log`), "an inserting trigger passes the completeness check")
			assert.Equal(t, int64(44), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE run_id = 'run-1' AND constraint_name = $1`, fk.Name))
			assert.Equal(t, int64(4), db.Count(t, `SELECT max(depth) FROM fkrollout.quarantine`))
			assert.Equal(t, int64(6), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE via_constraint = 'line_note_line_id_fkey' AND depth = 2`))
			validated(t, db, `ALTER TABLE invoice VALIDATE CONSTRAINT invoice_customer_fk`)

			again, err := Remediate(ctx, db.Pool, fk, ModeDeleteWithDependents, "r-1", RemediateOptions{BatchSize: batch, RunID: "run-1"})
			require.NoError(t, err)
			assert.Equal(t, RemediationResult{FK: fk.ID(), Mode: ModeDeleteWithDependents}, again)

			db.Exec(t, `ALTER TABLE invoice DROP CONSTRAINT invoice_customer_fk`) // the rollback, before a restore
			n, err := RestoreRun(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", "run-1", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(44), n)
			assert.Equal(t, before, checksums(t, db, invoiceTables), "identical data back")
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM fkrollout.quarantine`))
			n, err = RestoreRun(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", "run-1", fk.Name)
			require.NoError(t, err)
			assert.Zero(t, n, "a second restore does nothing")
			assert.Equal(t, before, checksums(t, db, invoiceTables))
		})
	}
}

// validated runs a VALIDATE in a transaction that is rolled back.
func validated(t *testing.T, db *pgtest.DB, sql string) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, sql)
	require.NoError(t, err)
}

// Rows referencing each other across two tables, a self-reference with
// RESTRICT and a data cycle: the walk ends, everything goes in one batch
// and comes back in one restore.
func TestRemediateCycles(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE dept (id int PRIMARY KEY);
INSERT INTO dept VALUES (1);
CREATE TABLE employee (id int PRIMARY KEY, dept_id int, reports_to int REFERENCES employee ON DELETE RESTRICT, desk_id int);
CREATE TABLE desk (id int PRIMARY KEY, employee_id int REFERENCES employee);
ALTER TABLE employee ADD FOREIGN KEY (desk_id) REFERENCES desk;
INSERT INTO employee (id, dept_id, reports_to) VALUES (1, 99, NULL), (2, 1, 1), (3, 1, 2), (4, 1, NULL), (5, 1, NULL), (6, 1, 5);
UPDATE employee SET reports_to = 6 WHERE id = 5;
INSERT INTO desk VALUES (10, 3), (11, 4);
UPDATE employee SET desk_id = 10 WHERE id = 4; -- 1 <- 2 <- 3 <- desk 10 <- 4 <- desk 11 <- 4
UPDATE employee SET desk_id = 11 WHERE id = 1;
`)
	fk := plan.ForeignKey{Name: "employee_dept_fk", Table: tn("public", "employee"), Columns: []string{"dept_id"}, RefTable: tn("public", "dept"), RefColumns: []string{"id"}}
	tables := []string{"employee", "desk"}
	before := checksums(t, db, tables)

	rep, err := Impact(ctx, db.Pool, fk, ModeDelete)
	require.NoError(t, err)
	assert.Equal(t, []TableChange{{Table: "public.employee", Deleted: 4}, {Table: "public.desk", Deleted: 2}}, rep.Tables)
	require.True(t, rep.Choice(ModeDeleteWithDependents).Possible, rep.Choice(ModeDeleteWithDependents).Reason)

	res, err := Remediate(ctx, db.Pool, fk, ModeDeleteWithDependents, "r-c", RemediateOptions{})
	require.NoError(t, err)
	assert.Equal(t, int64(6), res.Quarantined)
	assert.Equal(t, []int64{5, 6}, ids(t, db, "employee"), "the 5 <-> 6 cycle is not reachable from the orphan")
	n, err := Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-c", fk.Name)
	require.NoError(t, err)
	assert.Equal(t, int64(6), n)
	assert.Equal(t, before, checksums(t, db, tables))
}

func ids(t *testing.T, db *pgtest.DB, table string) []int64 {
	t.Helper()
	var out []int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM `+table).Scan(&out))
	return out
}

// A hierarchy deeper than MaxDependencyDepth is refused, with nothing
// changed; one within it goes and comes back.
func TestRemediateDepthLimit(t *testing.T) {
	cases := []struct {
		chain   int
		tooDeep bool
	}{{MaxDependencyDepth, false}, {MaxDependencyDepth + 3, true}}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.chain), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, `CREATE TABLE dept (id int PRIMARY KEY);
CREATE TABLE employee (id int PRIMARY KEY, dept_id int, reports_to int REFERENCES employee);
INSERT INTO employee VALUES (0, 99, NULL);
INSERT INTO employee SELECT g, NULL, g - 1 FROM generate_series(1, `+fmt.Sprint(tc.chain)+`) g;`)
			fk := plan.ForeignKey{Name: "employee_dept_fk", Table: tn("public", "employee"), Columns: []string{"dept_id"}, RefTable: tn("public", "dept"), RefColumns: []string{"id"}}
			before := checksums(t, db, []string{"employee"})
			rep, err := Impact(ctx, db.Pool, fk, ModeDelete)
			_, rerr := Remediate(ctx, db.Pool, fk, ModeDeleteWithDependents, "r-d", RemediateOptions{})
			if tc.tooDeep {
				require.ErrorIs(t, err, ErrTooDeep)
				assert.Contains(t, err.Error(), fmt.Sprintf("rows %d references away from the orphans of public.employee", MaxDependencyDepth+1))
				require.ErrorIs(t, rerr, ErrTooDeep)
				assert.Equal(t, before, checksums(t, db, []string{"employee"}))
				return
			}
			require.NoError(t, err)
			require.NoError(t, rerr)
			assert.Equal(t, []TableChange{{Table: "public.employee", Deleted: int64(tc.chain + 1)}}, rep.Tables)
			assert.Len(t, rep.Dependents, tc.chain)
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM employee`))
			n, err := Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-d", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(tc.chain+1), n)
			assert.Equal(t, before, checksums(t, db, []string{"employee"}))
		})
	}
}

// A batch in which a trigger deletes or updates rows that were not copied
// is rolled back whole; a trigger that only inserts (an audit log) passes.
func TestRemediateCompletenessCheck(t *testing.T) {
	const schema = `
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent VALUES (1);
CREATE TABLE child (id int PRIMARY KEY, pid int, v int);
INSERT INTO child SELECT g, CASE WHEN g % 2 = 0 THEN 1 ELSE 100 + g END, g FROM generate_series(1, 10) g;
CREATE TABLE dep (id int PRIMARY KEY, child_id int REFERENCES child ON DELETE CASCADE);
INSERT INTO dep SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE other (id int PRIMARY KEY, v int);
INSERT INTO other SELECT g, g FROM generate_series(1, 10) g;
CREATE TABLE log (id serial PRIMARY KEY, what text);
`
	triggers := map[string]string{
		"inserts":   `INSERT INTO log (what) VALUES (TG_OP || ' ' || TG_TABLE_NAME)`,
		"deletes":   `DELETE FROM other WHERE id = OLD.id`,
		"updates":   `UPDATE other SET v = v + 1 WHERE id = OLD.id`,
		"same rows": `UPDATE child SET v = v + 1 WHERE id = OLD.id + 1 AND id % 2 = 0`,
	}
	cases := []struct {
		mode    Mode
		table   string // table with the trigger
		event   string
		trigger string
		refused bool
	}{
		{ModeDelete, "child", "DELETE", "inserts", false},
		{ModeDelete, "child", "DELETE", "deletes", true},
		{ModeDelete, "child", "DELETE", "updates", true},
		{ModeDelete, "child", "DELETE", "same rows", true},
		{ModeSetNull, "child", "UPDATE", "inserts", false},
		{ModeSetNull, "child", "UPDATE", "deletes", true},
		{ModeSetNull, "child", "UPDATE", "updates", true},
		{ModeDeleteWithDependents, "dep", "DELETE", "inserts", false},
		{ModeDeleteWithDependents, "dep", "DELETE", "deletes", true},
		{ModeDeleteWithDependents, "dep", "DELETE", "updates", true},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s %s trigger on %s", tc.mode, tc.trigger, tc.table), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, schema)
			if tc.mode != ModeDeleteWithDependents {
				db.Exec(t, `DELETE FROM dep`)
			}
			db.Exec(t, `CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN `+triggers[tc.trigger]+`; RETURN OLD; END $$;
				CREATE TRIGGER t AFTER `+tc.event+` ON `+tc.table+` FOR EACH ROW EXECUTE FUNCTION t();`)
			fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
			tables := []string{"child", "dep", "other"}
			before := checksums(t, db, tables)

			_, err := Remediate(ctx, db.Pool, fk, tc.mode, "r-t", RemediateOptions{BatchSize: 2})
			if !tc.refused {
				require.NoError(t, err)
				assert.Positive(t, db.Count(t, `SELECT count(*) FROM log`))
				assert.Equal(t, before["other"], checksums(t, db, tables)["other"])
				return
			}
			require.ErrorIs(t, err, ErrUncapturedChanges)
			assert.Contains(t, err.Error(), "batch 1")
			tbl := "public.other"
			if tc.trigger == "same rows" {
				tbl = "public.child"
			}
			assert.Contains(t, err.Error(), tbl+": ")
			assert.Equal(t, before, checksums(t, db, tables), "nothing changed")
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM fkrollout.quarantine`))
		})
	}
}

// A row one constraint group nulled and another deleted comes back whole
// from RestoreAll, whichever group it restores first.
func TestRestoreAll(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, invoiceSchema)
	db.Exec(t, `CREATE TABLE product (id int PRIMARY KEY); INSERT INTO product VALUES (1);
		ALTER TABLE invoice_line ADD COLUMN product_id int;
		UPDATE invoice_line SET product_id = CASE WHEN id % 4 = 0 THEN 500 + id ELSE 1 END;
		ALTER TABLE invoice_line ADD CONSTRAINT invoice_line_product_fk FOREIGN KEY (product_id) REFERENCES product NOT VALID;`)
	tables := append([]string{"product"}, invoiceTables...)
	before := checksums(t, db, tables)
	lineFK := plan.ForeignKey{Name: "invoice_line_product_fk", Table: tn("public", "invoice_line"), Columns: []string{"product_id"}, RefTable: tn("public", "product"), RefColumns: []string{"id"}}

	res, err := Remediate(ctx, db.Pool, lineFK, ModeSetNull, "r-all", RemediateOptions{RunID: "run-1"})
	require.NoError(t, err)
	assert.Equal(t, int64(12), res.Affected)
	res, err = Remediate(ctx, db.Pool, invoiceFK(), ModeDeleteWithDependents, "r-all", RemediateOptions{RunID: "run-1"})
	require.NoError(t, err)
	assert.Equal(t, int64(44), res.Quarantined)
	assert.Positive(t, db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE action = 'delete' AND table_name = 'invoice_line' AND row_data->>'product_id' IS NULL`),
		"some lines were nulled, then deleted")

	n, err := RestoreAll(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-all", "run-2")
	require.NoError(t, err)
	assert.Empty(t, n, "another run's quarantine is left alone")
	db.Exec(t, `ALTER TABLE invoice DROP CONSTRAINT invoice_customer_fk; ALTER TABLE invoice_line DROP CONSTRAINT invoice_line_product_fk`)
	n, err = RestoreAll(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-all", "run-1")
	require.NoError(t, err)
	assert.Equal(t, map[string]int64{"invoice_customer_fk": 44, "invoice_line_product_fk": 12}, n)
	assert.Equal(t, before, checksums(t, db, tables))
	n, err = RestoreAll(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-all", "run-1")
	require.NoError(t, err)
	assert.Empty(t, n)
}

// A dependent table the role may read but not change makes
// delete_with_dependents impossible, and Remediate refuses it up front.
func TestDeleteWithDependentsNeedsPrivileges(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, invoiceSchema)
	role := pgtest.NewRole(t, db)
	// Created after NewRole: the admin's, not the table owner's.
	db.Exec(t, `CREATE TABLE ledger (id int PRIMARY KEY, invoice_id int REFERENCES invoice);
		INSERT INTO ledger VALUES (1, 102), (2, 3);
		GRANT SELECT ON ledger TO `+pgx.Identifier{role.Name}.Sanitize())
	rep, err := Impact(ctx, role.Pool, invoiceFK(), ModeDeleteWithDependents)
	require.NoError(t, err)
	c := rep.Choice(ModeDeleteWithDependents)
	assert.False(t, c.Possible)
	assert.Contains(t, c.Reason, "no DELETE, UPDATE (to lock rows FOR UPDATE) privilege on public.ledger")
	before := checksums(t, db, append(invoiceTables, "ledger"))
	_, err = Remediate(ctx, role.Pool, invoiceFK(), ModeDeleteWithDependents, "r-p", RemediateOptions{})
	require.ErrorIs(t, err, ErrNotPossible)
	assert.Equal(t, before, checksums(t, db, append(invoiceTables, "ledger")))

	db.Exec(t, `DELETE FROM ledger WHERE id = 1`)
	res, err := Remediate(ctx, role.Pool, invoiceFK(), ModeDeleteWithDependents, "r-p", RemediateOptions{})
	require.NoError(t, err, "the role's own tables are fine")
	assert.Equal(t, int64(44), res.Quarantined)
}

// An orphan that gets a parent while its batch waits for its row lock is
// left alone, and so is everything depending on it: the batch is redone
// without it rather than committing its dependents' removal.
func TestRemediateRescuedOrphanKeepsDependents(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, pid int);
INSERT INTO child SELECT g, 100 + g FROM generate_series(1, 20) g;
CREATE TABLE grandchild (id int PRIMARY KEY, child_id int REFERENCES child);
INSERT INTO grandchild VALUES (3, 3), (4, 4);
`)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT * FROM child WHERE id = 3 FOR UPDATE`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO parent VALUES (103)`)
	require.NoError(t, err)
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = tx.Commit(ctx)
	}()
	fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	// A lock_timeout longer than the client's transaction: the batch waits
	// for child 3 and gets it after the parent is committed.
	pol := dbx.LockPolicy{LockTimeout: 10 * time.Second, Attempts: 1}
	res, err := Remediate(ctx, db.Pool, fk, ModeDeleteWithDependents, "r-r", RemediateOptions{BatchSize: 100, Lock: pol})
	require.NoError(t, err)
	assert.Equal(t, int64(19), res.Affected)
	assert.Equal(t, int64(20), res.Quarantined)
	assert.Equal(t, []int64{3}, ids(t, db, "child"))
	assert.Equal(t, []int64{3}, ids(t, db, "grandchild"))
}

// Dependents in a partitioned table: rows are told apart by partition (the
// same ctid exists in each), counted and quarantined under the partitioned
// table, checked for completeness partition by partition, and restored
// through it.
func TestRemediatePartitionedDependent(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent VALUES (1);
CREATE TABLE child (id int PRIMARY KEY, pid int);
INSERT INTO child SELECT g, CASE WHEN g <= 4 THEN 100 + g ELSE 1 END FROM generate_series(1, 8) g;
CREATE TABLE event (id int, child_id int REFERENCES child ON DELETE CASCADE, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE event_2025 PARTITION OF event FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE event_2026 PARTITION OF event FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO event SELECT g, 1 + g % 8, CASE WHEN g % 2 = 0 THEN date '2025-06-01' ELSE date '2026-06-01' END FROM generate_series(1, 16) g;
`)
	require.Positive(t, db.Count(t, `SELECT count(*) FROM event_2025 a JOIN event_2026 b ON a.ctid = b.ctid`), "the same ctids in both partitions")
	fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	tables := []string{"child", "event"}
	before := checksums(t, db, tables)
	orphanEvents := db.Count(t, `SELECT count(*) FROM event WHERE child_id <= 4`)

	rep, err := Impact(ctx, db.Pool, fk, ModeDeleteWithDependents)
	require.NoError(t, err)
	assert.Equal(t, []TableChange{{Table: "public.child", Deleted: 4}, {Table: "public.event", Deleted: orphanEvents}}, rep.Tables)
	res, err := Remediate(ctx, db.Pool, fk, ModeDeleteWithDependents, "r-part", RemediateOptions{BatchSize: 3})
	require.NoError(t, err)
	assert.Equal(t, 4+orphanEvents, res.Quarantined)
	assert.Equal(t, perTable(rep.Tables), pgtest.QuarantineCounts(t, db, "r-part"))
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM event WHERE child_id <= 4`))
	assert.Equal(t, int64(16)-orphanEvents, db.Count(t, `SELECT count(*) FROM event`), "no other event touched")
	n, err := Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-part", fk.Name)
	require.NoError(t, err)
	assert.Equal(t, 4+orphanEvents, n)
	assert.Equal(t, before, checksums(t, db, tables))
}
