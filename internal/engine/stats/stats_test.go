package stats_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/stats"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const schemaSQL = `
CREATE SCHEMA "Sales";
CREATE TABLE workspaces (id text PRIMARY KEY, code text NOT NULL UNIQUE, status text NOT NULL CHECK (status IN ('ACTIVE','ARCHIVED')));
CREATE TABLE config_versions (id text PRIMARY KEY, workspace_id text NOT NULL, version int NOT NULL CHECK (version > 0),
  status text NOT NULL, CONSTRAINT cv_ws FOREIGN KEY (workspace_id) REFERENCES workspaces (id));
CREATE UNIQUE INDEX one_active_config ON config_versions (workspace_id) WHERE status = 'ACTIVE';
CREATE TABLE "Sales"."Orders" (id int PRIMARY KEY, ws text NOT NULL, cv text);
ALTER TABLE "Sales"."Orders" ADD CONSTRAINT "Orders_ws_fk" FOREIGN KEY (ws) REFERENCES workspaces (id) NOT VALID;
ALTER TABLE "Sales"."Orders" ADD CONSTRAINT orders_cv_fk FOREIGN KEY (cv) REFERENCES config_versions (id);
CREATE SCHEMA fkrollout;
CREATE TABLE fkrollout.constraints (id int PRIMARY KEY, CHECK (id > 0));
`

func TestTake(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schemaSQL)
	ctx := context.Background()

	tests := []struct {
		name    string
		schemas []string
		want    stats.Snapshot
	}{
		{"all user schemas, fkrollout excluded", nil, stats.Snapshot{
			Tables: 3, ForeignKeys: 3, ForeignKeysValidated: 2, ForeignKeysNotValid: 1,
			CheckConstraints: 2, UniqueIndexes: 5, PartialUniqueIndexes: 1,
			NotValid: []string{`"Sales"."Orders"."Orders_ws_fk"`},
		}},
		{"public only", []string{"public"}, stats.Snapshot{
			Tables: 2, ForeignKeys: 1, ForeignKeysValidated: 1, CheckConstraints: 2,
			UniqueIndexes: 4, PartialUniqueIndexes: 1, NotValid: []string{},
		}},
		{"mixed-case schema only", []string{"Sales"}, stats.Snapshot{
			Tables: 1, ForeignKeys: 2, ForeignKeysValidated: 1, ForeignKeysNotValid: 1,
			UniqueIndexes: 1, NotValid: []string{`"Sales"."Orders"."Orders_ws_fk"`},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := stats.Take(ctx, db.Pool, tc.schemas)
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now(), got.TakenAt, time.Minute)
			assert.Nil(t, got.Orphans)
			got.TakenAt = time.Time{}
			assert.Equal(t, tc.want, got)
		})
	}

	// Validating the NOT VALID key moves it from one bucket to the other.
	db.Exec(t, `ALTER TABLE "Sales"."Orders" VALIDATE CONSTRAINT "Orders_ws_fk"`)
	after, err := stats.Take(ctx, db.Pool, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, after.ForeignKeysValidated)
	assert.Equal(t, 0, after.ForeignKeysNotValid)
	assert.Empty(t, after.NotValid)

	b, err := json.Marshal(after)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"foreign_keys_not_valid":0`)
	assert.Contains(t, string(b), `"not_valid":[]`)
	assert.NotContains(t, string(b), `orphans`)
}

func TestCompareLikeTheSeeds(t *testing.T) {
	zero, none := int64(0), int64(0)
	before := stats.Snapshot{ForeignKeys: 1, ForeignKeysValidated: 1, CheckConstraints: 283, PartialUniqueIndexes: 1, UniqueIndexes: 40, Tables: 16, Orphans: &zero}
	after := stats.Snapshot{ForeignKeys: 57, ForeignKeysValidated: 45, ForeignKeysNotValid: 12, CheckConstraints: 283, PartialUniqueIndexes: 1, UniqueIndexes: 20, Tables: 16, Orphans: &none}
	rows := stats.Compare(before, after)
	byMetric := map[string]stats.Row{}
	for _, r := range rows {
		byMetric[r.Metric] = r
	}
	tests := []struct{ metric, before, after, change string }{
		{"Foreign Keys", "1", "57", "+5,600%"},
		{"Validated Foreign Keys", "1", "45", "+4,400%"},
		{"NOT VALID Foreign Keys", "0", "12", "+12"},
		{"CHECK Constraints", "283", "283", "No change"},
		{"Partial Unique Index", "1", "1", "No change"},
		{"Unique Indexes", "40", "20", "-50%"},
		{"Orphaned Records", "0", "0", "No change"},
	}
	for _, tc := range tests {
		assert.Equal(t, stats.Row{Metric: tc.metric, Before: tc.before, After: tc.after, Change: tc.change}, byMetric[tc.metric], tc.metric)
	}
	assert.Equal(t, "Foreign Keys", rows[0].Metric, "table order: Foreign Keys first")
	assert.Equal(t, "Orphaned Records", rows[len(rows)-1].Metric)

	md := stats.RenderMarkdown(rows)
	assert.True(t, strings.HasPrefix(md, "| Metric | Before | After | Change |\n|--------|--------|-------|--------|\n"), md)
	assert.Contains(t, md, "| Foreign Keys | 1 | **57** | +5,600% |\n")
	assert.Contains(t, md, "| CHECK Constraints | 283 | 283 | No change |\n")

	// Small and unmeasured changes.
	s1 := stats.Compare(stats.Snapshot{ForeignKeys: 1000}, stats.Snapshot{ForeignKeys: 1003})
	assert.Equal(t, "+0.3%", s1[0].Change)
	assert.Equal(t, "1,003", s1[0].After)
	assert.Equal(t, "n/a", s1[len(s1)-1].Change)
	assert.Equal(t, "not measured", s1[len(s1)-1].Before)
}

func TestIndexCoverageAndCreate(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `
CREATE SCHEMA "App";
CREATE TABLE "App".parents (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE "App"."Kids" (id int PRIMARY KEY, a int, b int, "Owner" int, c int, d int, e int);
CREATE INDEX kids_b_a_id ON "App"."Kids" (b, a, id);                -- permutation, extra trailing column
CREATE INDEX kids_owner_partial ON "App"."Kids" ("Owner") WHERE "Owner" IS NOT NULL;
CREATE INDEX kids_id_c ON "App"."Kids" (id, c);                     -- c is not leading
CREATE INDEX kids_expr_d ON "App"."Kids" ((d + 0));                 -- expression, not the column
`)
	ctx := context.Background()
	kids := plan.TableName{Schema: "App", Name: "Kids"}
	parents := plan.TableName{Schema: "App", Name: "parents"}
	fk := func(name string, cols ...string) plan.ForeignKey {
		return plan.ForeignKey{Name: name, Table: kids, Columns: cols, RefTable: parents, RefColumns: []string{"a", "b"}}
	}
	fks := []plan.ForeignKey{
		fk("composite_permuted", "a", "b"),
		fk("partial_only", "Owner"),
		fk("not_leading", "c"),
		fk("expression_only", "d"),
		fk("leading_prefix", "b"),
	}
	advice, err := stats.CheckIndexes(ctx, db.Pool, fks)
	require.NoError(t, err)
	require.Len(t, advice, len(fks))

	want := []struct {
		covered bool
		index   string
	}{{true, "kids_b_a_id"}, {false, ""}, {false, ""}, {false, ""}, {true, "kids_b_a_id"}}
	for i, w := range want {
		assert.Equal(t, w.covered, advice[i].Covered, fks[i].Name)
		assert.Equal(t, w.index, advice[i].Index, fks[i].Name)
		assert.Equal(t, fks[i].ID(), advice[i].FK)
		if w.covered {
			assert.Empty(t, advice[i].Statement)
		}
	}
	assert.Equal(t, `CREATE INDEX CONCURRENTLY IF NOT EXISTS "Kids_Owner_fkr_idx" ON "App"."Kids" ("Owner")`, advice[1].Statement)

	// Build the missing ones; the advice flips to covered and a second call is a no-op.
	for _, a := range advice[1:4] {
		require.NoError(t, stats.CreateIndex(ctx, db.Pool, a, 2*time.Second), a.FK)
		require.NoError(t, stats.CreateIndex(ctx, db.Pool, a, 2*time.Second), "idempotent: %s", a.FK)
	}
	again, err := stats.CheckIndexes(ctx, db.Pool, fks)
	require.NoError(t, err)
	for i, a := range again {
		assert.True(t, a.Covered, fks[i].Name)
	}
	assert.Equal(t, "Kids_Owner_fkr_idx", again[1].Index)
	assert.Equal(t, int64(0), db.Count(t, `SELECT count(*) FROM pg_index WHERE NOT indisvalid`))
	// The pooled session went back without our lock_timeout.
	var lt string
	require.NoError(t, db.Pool.QueryRow(ctx, "SHOW lock_timeout").Scan(&lt))
	assert.Equal(t, "0", lt)

	_, err = stats.CheckIndexes(ctx, db.Pool, []plan.ForeignKey{{Name: "x", Table: plan.TableName{Schema: "App", Name: "nope"}, Columns: []string{"a"}}})
	assert.ErrorContains(t, err, "does not exist")
}

func TestCreateIndexFailureLeavesNoInvalidIndex(t *testing.T) {
	db := pgtest.New(t)
	// Duplicate values make a UNIQUE concurrent build fail half-way, the
	// classic way to leave an INVALID index; ours is not unique, so we fake
	// the half-built leftover and check CreateIndex replaces it.
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY, p_id int);
INSERT INTO c SELECT g, g % 7 FROM generate_series(1, 100) g;
CREATE UNIQUE INDEX "c_p_id_fkr_idx" ON c (p_id) WHERE false;`)
	ctx := context.Background()
	fk := plan.ForeignKey{Name: "c_p", Table: plan.TableName{Schema: "public", Name: "c"}, Columns: []string{"p_id"}, RefTable: plan.TableName{Schema: "public", Name: "p"}, RefColumns: []string{"id"}}
	// Mark it invalid the way a failed CONCURRENTLY build leaves it.
	db.Exec(t, `UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'c_p_id_fkr_idx'::regclass`)
	adv, err := stats.CheckIndexes(ctx, db.Pool, []plan.ForeignKey{fk})
	require.NoError(t, err)
	require.False(t, adv[0].Covered)
	missing := adv[0]
	require.NoError(t, stats.CreateIndex(ctx, db.Pool, missing, time.Second))
	adv, err = stats.CheckIndexes(ctx, db.Pool, []plan.ForeignKey{fk})
	require.NoError(t, err)
	assert.True(t, adv[0].Covered)
	assert.Equal(t, int64(0), db.Count(t, `SELECT count(*) FROM pg_index WHERE NOT indisvalid`))

	// A writer that stays open makes the concurrent build time out in its
	// wait-for-writers phase, after the catalog entry exists: the classic
	// INVALID leftover. CreateIndex must drop it and return the error.
	db.Exec(t, `DROP INDEX c_p_id_fkr_idx`)
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO c VALUES (1000, 1)`)
	require.NoError(t, err)
	released := make(chan struct{})
	go func() {
		time.Sleep(time.Second) // long past the 200ms lock_timeout
		_ = tx.Rollback(ctx)
		close(released)
	}()
	err = stats.CreateIndex(ctx, db.Pool, missing, 200*time.Millisecond)
	<-released
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lock timeout")
	assert.Equal(t, int64(0), db.Count(t, `SELECT count(*) FROM pg_class WHERE relname = 'c_p_id_fkr_idx'`), "invalid leftover dropped")

	// And with the writer gone it succeeds.
	require.NoError(t, stats.CreateIndex(ctx, db.Pool, missing, time.Second))
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM pg_index WHERE indexrelid = 'c_p_id_fkr_idx'::regclass AND indisvalid`))
}

func TestIndexName(t *testing.T) {
	assert.Equal(t, "kids_a_b_fkr_idx", stats.IndexName("kids", []string{"a", "b"}))
	long := strings.Repeat("t", 50)
	n1 := stats.IndexName(long, []string{strings.Repeat("c", 30), "x"})
	n2 := stats.IndexName(long, []string{strings.Repeat("c", 30), "y"})
	assert.LessOrEqual(t, len(n1), 63)
	assert.NotEqual(t, n1, n2, "hash keeps truncated names apart")
	assert.True(t, strings.HasSuffix(n1, "_fkr_idx"))
	assert.Equal(t, n1, stats.IndexName(long, []string{strings.Repeat("c", 30), "x"}), "deterministic")
	multi := stats.IndexName(strings.Repeat("é", 40), []string{"a"})
	assert.LessOrEqual(t, len(multi), 63)
	assert.True(t, strings.HasSuffix(multi, "_fkr_idx"))
}
