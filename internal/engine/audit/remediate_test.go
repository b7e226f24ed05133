package audit

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// remediationSchema: 25 orphans (even ids 2..50), 25 valid rows (odd ids),
// 5 rows with a NULL key (ids 51..55), in a quoted non-public schema with an
// identity column, a generated column and mixed types.
const remediationSchema = `
CREATE SCHEMA "Shop";
CREATE TABLE "Shop"."Orders" (o1 int, o2 int, PRIMARY KEY (o1, o2));
INSERT INTO "Shop"."Orders" VALUES (1, 1), (2, 2);
CREATE TABLE "Shop"."Line Items" (
    id      int PRIMARY KEY,
    seq     bigint GENERATED ALWAYS AS IDENTITY,
    "OrderA" int,
    "OrderB" int,
    note    text,
    tags    text[],
    price   numeric(10,2),
    at      timestamptz,
    doubled int GENERATED ALWAYS AS (id * 2) STORED
);
INSERT INTO "Shop"."Line Items" (id, "OrderA", "OrderB", note, tags, price, at)
SELECT g,
       CASE WHEN g % 2 = 0 THEN 900 + g ELSE 1 END,
       CASE WHEN g % 2 = 0 THEN 900 + g ELSE 1 END,
       'row ' || g || ' "quoted" \ back', ARRAY['a', NULL, 'c' || g], g * 1.25, '2026-01-02 03:04:05+00'::timestamptz + g * interval '1 hour'
FROM generate_series(1, 50) g;
INSERT INTO "Shop"."Line Items" (id, "OrderA", "OrderB", note) SELECT g, NULL, 77, 'null key' FROM generate_series(51, 55) g;
`

const snapshotSQL = `SELECT coalesce(array_agg(to_jsonb(t)::text ORDER BY id), '{}') FROM "Shop"."Line Items" t`

func rowsWhere(t *testing.T, db *pgtest.DB, where string) []string {
	t.Helper()
	var out []string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(to_jsonb(t)::text ORDER BY id), '{}') FROM "Shop"."Line Items" t WHERE `+where).Scan(&out))
	return out
}

func quarantined(t *testing.T, db *pgtest.DB, rollout, fk, action string) []string {
	t.Helper()
	var out []string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(row_data::text ORDER BY (row_data->>'id')::int), '{}')
		FROM fkrollout.quarantine WHERE rollout_id = $1 AND constraint_name = $2 AND action = $3
		AND table_schema = 'Shop' AND table_name = 'Line Items'`, rollout, fk, action).Scan(&out))
	return out
}

func lineItemsFK(match plan.MatchType) plan.ForeignKey {
	return plan.ForeignKey{Name: "Line Items_order_fk", Table: tn("Shop", "Line Items"), Columns: []string{"OrderA", "OrderB"},
		RefTable: tn("Shop", "Orders"), RefColumns: []string{"o1", "o2"}, Match: match}
}

func TestRemediate(t *testing.T) {
	cases := []struct {
		mode  Mode
		match plan.MatchType
	}{
		{ModeDelete, plan.MatchSimple},
		{ModeSetNull, plan.MatchSimple},
		{ModeDelete, plan.MatchFull},
		{ModeSetNull, plan.MatchFull},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode)+"_"+string(tc.match), func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, remediationSchema)
			fk := lineItemsFK(tc.match)
			orphanWhere := `id <= 50 AND id % 2 = 0`
			if tc.match == plan.MatchFull {
				orphanWhere = `(id <= 50 AND id % 2 = 0) OR id > 50` // partial NULL is a violation
			}
			wantN := int64(len(rowsWhere(t, db, orphanWhere)))
			before := rowsWhere(t, db, "true")
			orphansBefore := rowsWhere(t, db, orphanWhere)
			untouchedBefore := rowsWhere(t, db, "NOT ("+orphanWhere+")")

			a, err := AuditOne(ctx, db.Pool, fk, Options{})
			require.NoError(t, err)
			require.Equal(t, wantN, a.Orphans)

			res, err := Remediate(ctx, db.Pool, fk, tc.mode, "r-1", RemediateOptions{BatchSize: 7})
			require.NoError(t, err)
			assert.Equal(t, RemediationResult{FK: fk.ID(), Mode: tc.mode, Quarantined: wantN, Affected: wantN, Batches: int((wantN + 6) / 7)}, res)

			// Quarantine holds exactly the affected rows, whole.
			assert.Equal(t, orphansBefore, quarantined(t, db, "r-1", fk.Name, string(tc.mode)))
			// Orphans gone, PostgreSQL agrees, other rows untouched.
			a, err = AuditOne(ctx, db.Pool, fk, Options{})
			require.NoError(t, err)
			assert.Zero(t, a.Orphans)
			assert.True(t, validates(t, db, fk))
			assert.Equal(t, untouchedBefore, rowsWhere(t, db, "NOT ("+orphanWhere+")"))
			switch tc.mode {
			case ModeDelete:
				assert.Empty(t, rowsWhere(t, db, orphanWhere))
			case ModeSetNull:
				assert.Equal(t, wantN, db.Count(t, `SELECT count(*) FROM "Shop"."Line Items" WHERE "OrderA" IS NULL AND "OrderB" IS NULL AND (`+orphanWhere+`)`))
				assert.Equal(t, int64(len(before)), db.Count(t, `SELECT count(*) FROM "Shop"."Line Items"`))
			}

			// Idempotent.
			again, err := Remediate(ctx, db.Pool, fk, tc.mode, "r-1", RemediateOptions{BatchSize: 7})
			require.NoError(t, err)
			assert.Equal(t, RemediationResult{FK: fk.ID(), Mode: tc.mode}, again)

			// Restore puts back exactly what was there.
			n, err := Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, wantN, n)
			assert.Equal(t, before, rowsWhere(t, db, "true"))
			assert.Zero(t, db.Count(t, `SELECT count(*) FROM fkrollout.quarantine`))
			n, err = Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", fk.Name)
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

func TestRemediateSetNullRefused(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, pid int NOT NULL, other int);
INSERT INTO child VALUES (1, 5, 1), (2, 6, 2);
CREATE TABLE nopk (pid int);
INSERT INTO nopk SELECT 5 + g % 3 FROM generate_series(1, 20) g;
`)
	var before []string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(to_jsonb(c)::text ORDER BY id) FROM child c`).Scan(&before))

	cases := []struct {
		name string
		fk   plan.ForeignKey
		mode Mode
		want string
	}{
		{"not null column", plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}, ModeSetNull, "column(s) pid of public.child are NOT NULL"},
		{"no primary key", plan.ForeignKey{Name: "nopk_fk", Table: tn("public", "nopk"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}, ModeSetNull, "needs a primary key"},
		{"unknown mode", plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}, "truncate", `unknown mode "truncate"`},
		{"missing table", plan.ForeignKey{Name: "x_fk", Table: tn("public", "nope"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}, ModeDelete, "table public.nope does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Remediate(ctx, db.Pool, tc.fk, tc.mode, "r-1", RemediateOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// Nothing changed, not even the bookkeeping schema.
	var after []string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(to_jsonb(c)::text ORDER BY id) FROM child c`).Scan(&after))
	assert.Equal(t, before, after)
	assert.Equal(t, int64(20), db.Count(t, `SELECT count(*) FROM nopk`))
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_namespace WHERE nspname = 'fkrollout'`))

	// Delete works on a table without a primary key (ctid batches) and restores.
	fk := plan.ForeignKey{Name: "nopk_fk", Table: tn("public", "nopk"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	res, err := Remediate(ctx, db.Pool, fk, ModeDelete, "r-1", RemediateOptions{BatchSize: 3})
	require.NoError(t, err)
	assert.Equal(t, int64(20), res.Affected)
	assert.Equal(t, 7, res.Batches)
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM nopk`))
	n, err := Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-1", "nopk_fk")
	require.NoError(t, err)
	assert.Equal(t, int64(20), n)
	assert.Equal(t, int64(6), db.Count(t, `SELECT count(*) FROM nopk WHERE pid = 5`))
	assert.Equal(t, int64(20), db.Count(t, `SELECT count(*) FROM nopk`))
}

// TestRemediateWaitsForLockedRows: a client holding a lock on an orphan row
// makes the batch time out and retry, not skip the row; once the lock is
// released every orphan is remediated. A parent inserted by that client
// saves its child.
func TestRemediateWaitsForLockedRows(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (id int PRIMARY KEY, pid int);
INSERT INTO child SELECT g, 100 + g FROM generate_series(1, 20) g;
`)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT * FROM child WHERE id = 3 FOR UPDATE`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO parent VALUES (103)`) // rescues child 3 once committed
	require.NoError(t, err)
	go func() {
		time.Sleep(400 * time.Millisecond)
		_ = tx.Commit(ctx)
	}()
	fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	pol := dbx.LockPolicy{LockTimeout: 50 * time.Millisecond, Attempts: 50, BaseBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	res, err := Remediate(ctx, db.Pool, fk, ModeDelete, "r-2", RemediateOptions{BatchSize: 100, Lock: pol})
	require.NoError(t, err)
	assert.Equal(t, int64(19), res.Affected)
	assert.Equal(t, int64(19), res.Quarantined)
	assert.Equal(t, []int64{3}, func() []int64 {
		var ids []int64
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT array_agg(id) FROM child`).Scan(&ids))
		return ids
	}())
	assert.Equal(t, int64(19), db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = 'r-2'`))
}

// TestRemediateKeyTypes: the keyset cursor works for any primary key type.
func TestRemediateKeyTypes(t *testing.T) {
	cases := []struct{ name, pk, keyExpr string }{
		{"uuid", "k uuid PRIMARY KEY", "md5(g::text)::uuid"},
		{"timestamptz and text", "k timestamptz, k2 text, PRIMARY KEY (k, k2)", "'2026-01-01'::timestamptz + g * interval '1 second', 'x' || g"},
		{"numeric", "k numeric(12,3) PRIMARY KEY", "g / 7.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.New(t)
			db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent VALUES (1);
CREATE TABLE child (`+tc.pk+`, pid int);
INSERT INTO child SELECT `+tc.keyExpr+`, CASE WHEN g % 3 = 0 THEN 1 ELSE 100 + g END FROM generate_series(1, 30) g;`)
			fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
			for _, mode := range []Mode{ModeSetNull, ModeDelete} {
				res, err := Remediate(ctx, db.Pool, fk, mode, "r-"+string(mode), RemediateOptions{BatchSize: 4})
				require.NoError(t, err)
				if mode == ModeSetNull {
					assert.Equal(t, int64(20), res.Affected)
					assert.Equal(t, 5, res.Batches)
				} else {
					assert.Zero(t, res.Affected, "nothing left after set_null")
				}
			}
			assert.Equal(t, int64(20), db.Count(t, `SELECT count(*) FROM child WHERE pid IS NULL`))
			n, err := Restore(ctx, db.Pool, dbx.DefaultLockPolicy(), "r-set_null", fk.Name)
			require.NoError(t, err)
			assert.Equal(t, int64(20), n)
			assert.Equal(t, int64(20), db.Count(t, `SELECT count(*) FROM child WHERE pid > 100`))
		})
	}
}
