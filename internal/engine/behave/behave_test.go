package behave_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/behave"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// schema has one child table per behaviour, each with existing rows, so the
// test can prove they are untouched and no sequence moved.
const schema = `
CREATE TYPE mood AS ENUM ('calm', 'busy');
CREATE TYPE pair AS (a int, b int);
CREATE DOMAIN short_code AS varchar(6);

CREATE TABLE parents (id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO parents VALUES (0, 'unknown');
INSERT INTO parents (name) SELECT 'p' || g FROM generate_series(1, 5) g;

CREATE TABLE kids_restrict (id serial PRIMARY KEY, parent_id int NOT NULL,
  CONSTRAINT kids_restrict_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE RESTRICT);
CREATE TABLE kids_deferred (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, parent_id int NOT NULL,
  CONSTRAINT kids_deferred_fk FOREIGN KEY (parent_id) REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE kids_cascade (id serial PRIMARY KEY, parent_id int NOT NULL, note text NOT NULL,
  CONSTRAINT kids_cascade_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE CASCADE);
CREATE TABLE kids_null (id serial PRIMARY KEY, parent_id int,
  CONSTRAINT kids_null_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE SET NULL ON UPDATE SET NULL);
CREATE TABLE kids_default (id serial PRIMARY KEY, parent_id int NOT NULL DEFAULT 0,
  CONSTRAINT kids_default_fk FOREIGN KEY (parent_id) REFERENCES parents (id) ON DELETE SET DEFAULT);
CREATE TABLE kids_unlinked (id serial PRIMARY KEY, parent_id int NOT NULL);
INSERT INTO kids_restrict (parent_id) VALUES (1), (2);
INSERT INTO kids_deferred (parent_id) VALUES (1);
INSERT INTO kids_cascade (parent_id, note) VALUES (3, 'x');
INSERT INTO kids_null (parent_id) VALUES (4), (NULL);
INSERT INTO kids_default (parent_id) VALUES (5);
INSERT INTO kids_unlinked (parent_id) VALUES (1);

CREATE TABLE orders (tenant int, id bigint, placed date NOT NULL, PRIMARY KEY (tenant, id));
CREATE TABLE order_lines (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant int NOT NULL, order_id bigint NOT NULL, qty int NOT NULL CHECK (qty > 0),
  CONSTRAINT order_lines_order_fk FOREIGN KEY (tenant, order_id) REFERENCES orders (tenant, id) ON DELETE CASCADE ON UPDATE CASCADE);
INSERT INTO orders VALUES (1, 1, '2024-01-01');
INSERT INTO order_lines (tenant, order_id, qty) VALUES (1, 1, 3);

CREATE TABLE employees (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, manager_id int, name text NOT NULL,
  CONSTRAINT employees_manager_fk FOREIGN KEY (manager_id) REFERENCES employees (id) ON DELETE SET NULL);
INSERT INTO employees (name) VALUES ('boss');
INSERT INTO employees (manager_id, name) VALUES (1, 'worker');

CREATE TABLE kids_upper (id serial PRIMARY KEY, parent_id int NOT NULL, code text NOT NULL CHECK (code ~ '^[A-Z0-9-]+$'),
  CONSTRAINT kids_upper_fk FOREIGN KEY (parent_id) REFERENCES parents (id));
CREATE TABLE nodes (id int PRIMARY KEY, parent_id int NOT NULL, label varchar(8) NOT NULL,
  CONSTRAINT nodes_parent_fk FOREIGN KEY (parent_id) REFERENCES nodes (id) ON DELETE CASCADE);
INSERT INTO nodes VALUES (1, 1, 'root'), (2, 1, 'leaf');

CREATE SCHEMA "Billing";
CREATE TABLE "Billing"."Customer" ("Id" bigserial PRIMARY KEY, "Full Name" text NOT NULL);
CREATE TABLE "Billing"."Invoice" ("Id" bigserial PRIMARY KEY, "Customer Id" bigint NOT NULL,
  CONSTRAINT "Invoice_Customer_FK" FOREIGN KEY ("Customer Id") REFERENCES "Billing"."Customer" ("Id"));
INSERT INTO "Billing"."Customer" ("Full Name") VALUES ('Ada');
INSERT INTO "Billing"."Invoice" ("Customer Id") VALUES (1);

CREATE TABLE workspaces (id text PRIMARY KEY, code varchar(12) NOT NULL UNIQUE);
CREATE TABLE accounts (id uuid PRIMARY KEY, workspace_id text NOT NULL REFERENCES workspaces (id),
  status text NOT NULL CHECK (status IN ('A', 'B')));
CREATE TABLE events (
  id bigserial PRIMARY KEY,
  account_id uuid NOT NULL,
  workspace_id text NOT NULL REFERENCES workspaces (id),
  status text NOT NULL CHECK (status IN ('A', 'B')),
  kind varchar(10) NOT NULL CHECK (kind IN ('open', 'close')),
  small smallint NOT NULL, big bigint NOT NULL, amount numeric(5,2) NOT NULL CHECK (amount >= 0),
  code varchar(3) NOT NULL UNIQUE, flag char(2) NOT NULL, ref uuid NOT NULL, ok boolean NOT NULL,
  at timestamptz NOT NULL, on_day date NOT NULL, doc jsonb NOT NULL, feeling mood NOT NULL,
  tags int[] NOT NULL, labels text[] NOT NULL, span interval NOT NULL, raw bytea NOT NULL, ip inet NOT NULL,
  sc short_code NOT NULL, ratio double precision NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT events_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE);

CREATE TABLE odd_parents (id int PRIMARY KEY, code text NOT NULL CHECK (length(code) = 37 AND code ~ '^x'));
CREATE TABLE odd_kids (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES odd_parents (id));
CREATE TABLE weird_kids (id int PRIMARY KEY, parent_id int NOT NULL, shape pair NOT NULL,
  CONSTRAINT weird_kids_fk FOREIGN KEY (parent_id) REFERENCES parents (id));
`

func tn(s, n string) plan.TableName { return plan.TableName{Schema: s, Name: n} }

func fk(name, table string, cols []string, ref string, refCols []string, del, upd plan.Action) plan.ForeignKey {
	return plan.ForeignKey{Name: name, Table: tn("public", table), Columns: cols, RefTable: tn("public", ref), RefColumns: refCols, OnDelete: del, OnUpdate: upd}
}

var id = []string{"id"}
var parentID = []string{"parent_id"}

type want struct {
	outcome behave.Outcome
	detail  string // substring
}

func TestRun(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	ctx := context.Background()

	deferred := fk("kids_deferred_fk", "kids_deferred", parentID, "parents", id, "", "")
	deferred.Deferrable, deferred.InitiallyDeferred = true, true
	tests := []struct {
		fk    plan.ForeignKey
		cases map[string]want
	}{
		{fk("kids_restrict_fk", "kids_restrict", parentID, "parents", id, plan.ActionRestrict, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, "23503 by kids_restrict_fk"},
			"on-delete-restrict":     {behave.Passed, "rejected with 23503"},
		}},
		{deferred, map[string]want{
			"insert-orphan-rejected": {behave.Passed, "23503"},
			"on-delete-no-action":    {behave.Passed, "rejected with 23503"},
		}},
		{fk("kids_cascade_fk", "kids_cascade", parentID, "parents", id, plan.ActionCascade, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-cascade":      {behave.Passed, "deleted with its parent"},
		}},
		{fk("kids_null_fk", "kids_null", parentID, "parents", id, plan.ActionSetNull, plan.ActionSetNull), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-set-null":     {behave.Passed, "NULL"},
			"on-update-set-null":     {behave.Passed, "NULL"},
		}},
		{fk("kids_default_fk", "kids_default", parentID, "parents", id, plan.ActionSetDefault, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-set-default":  {behave.Passed, "default (0)"},
		}},
		{fk("order_lines_order_fk", "order_lines", []string{"tenant", "order_id"}, "orders", []string{"tenant", "id"}, plan.ActionCascade, plan.ActionCascade), map[string]want{
			"insert-orphan-rejected": {behave.Passed, "tenant="},
			"on-delete-cascade":      {behave.Passed, ""},
			"on-update-cascade":      {behave.Passed, "new key"},
		}},
		{fk("employees_manager_fk", "employees", []string{"manager_id"}, "employees", id, plan.ActionSetNull, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-set-null":     {behave.Passed, ""},
		}},
		// The first value set breaks the CHECK, the alternative satisfies it.
		{fk("kids_upper_fk", "kids_upper", parentID, "parents", id, "", ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-no-action":    {behave.Passed, ""},
		}},
		// Self-reference whose column is NOT NULL: the test parent points at itself.
		{fk("nodes_parent_fk", "nodes", parentID, "nodes", id, plan.ActionCascade, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-cascade":      {behave.Passed, ""},
		}},
		{plan.ForeignKey{Name: "Invoice_Customer_FK", Table: tn("Billing", "Invoice"), Columns: []string{"Customer Id"},
			RefTable: tn("Billing", "Customer"), RefColumns: []string{"Id"}}, map[string]want{
			"insert-orphan-rejected": {behave.Passed, `"Customer Id"=`},
			"on-delete-no-action":    {behave.Passed, ""},
		}},
		{fk("events_account_fk", "events", []string{"account_id"}, "accounts", id, plan.ActionCascade, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-cascade":      {behave.Passed, ""},
		}},
		// Unsynthesizable parent: its CHECK defeats both attempts.
		{fk("odd_kids_parent_id_fkey", "odd_kids", parentID, "odd_parents", id, "", ""), map[string]want{
			"insert-orphan-rejected": {behave.Skipped, "odd_parents_code_check"},
			"on-delete-no-action":    {behave.Skipped, "cannot synthesize a row for public.odd_parents"},
		}},
		// Unsynthesizable child: a NOT NULL column of a composite type.
		{fk("weird_kids_fk", "weird_kids", parentID, "parents", id, "", ""), map[string]want{
			"insert-orphan-rejected": {behave.Skipped, "no value generator for NOT NULL column shape of type pair"},
			"on-delete-no-action":    {behave.Skipped, "no value generator"},
		}},
		// Broken: the rollout never added this constraint.
		{fk("kids_unlinked_fk", "kids_unlinked", parentID, "parents", id, plan.ActionRestrict, ""), map[string]want{
			"insert-orphan-rejected": {behave.Failed, "constraint kids_unlinked_fk does not exist on public.kids_unlinked"},
			"on-delete-restrict":     {behave.Failed, "succeeded"},
		}},
		// Broken: the plan says CASCADE, the database restricts.
		{fk("kids_restrict_fk", "kids_restrict", parentID, "parents", id, plan.ActionCascade, ""), map[string]want{
			"insert-orphan-rejected": {behave.Passed, ""},
			"on-delete-cascade":      {behave.Failed, "kids_restrict_fk"},
		}},
	}
	fks := make([]plan.ForeignKey, len(tests))
	for i, tc := range tests {
		fks[i] = tc.fk
	}

	before := census(t, db, 15, 5)
	results, err := behave.Run(ctx, db.Pool, fks, dbx.DefaultLockPolicy())
	require.NoError(t, err)
	after := census(t, db, 15, 5)
	assert.Equal(t, before, after, "row counts and sequence positions identical after Run")

	require.Len(t, results, len(tests))
	for i, tc := range tests {
		t.Run(tc.fk.Name, func(t *testing.T) { assertCases(t, results[i], tc.fk, tc.cases) })
	}

	b, err := json.Marshal(results[0])
	require.NoError(t, err)
	assert.JSONEq(t, `{"fk":"public.kids_restrict.kids_restrict_fk","cases":[
		{"name":"insert-orphan-rejected","outcome":"passed","detail":`+jsonString(results[0].Cases[0].Detail)+`},
		{"name":"on-delete-restrict","outcome":"passed","detail":`+jsonString(results[0].Cases[1].Detail)+`}]}`, string(b))
}

// assertCases checks that res is fk's and has exactly the wanted cases.
func assertCases(t *testing.T, res behave.Result, fk plan.ForeignKey, cases map[string]want) {
	t.Helper()
	assert.Equal(t, fk.ID(), res.FK)
	got := map[string]behave.Case{}
	for _, c := range res.Cases {
		got[c.Name] = c
		t.Logf("%s: %s — %s", c.Name, c.Outcome, c.Detail)
	}
	assert.Len(t, got, len(cases), "cases: %+v", res.Cases)
	wantPassed := true
	for name, w := range cases {
		c, ok := got[name]
		if !assert.True(t, ok, "case %s missing in %+v", name, res.Cases) {
			continue
		}
		assert.Equal(t, w.outcome, c.Outcome, "%s: %s", name, c.Detail)
		assert.Contains(t, c.Detail, w.detail, name)
		assert.NotEmpty(t, c.Detail, name)
		wantPassed = wantPassed && w.outcome != behave.Failed
	}
	assert.Equal(t, wantPassed, res.Passed())
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestRunReturnsInfrastructureErrors(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p (id))`)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := behave.Run(ctx, db.Pool, []plan.ForeignKey{fk("c_p_id_fkey", "c", []string{"p_id"}, "p", id, "", "")}, dbx.DefaultLockPolicy())
	require.Error(t, err, "a dead connection or cancelled context is an error, never a skipped or failed case")
	assert.Nil(t, res)
}

func TestRunRejectsBadInputBeforeTouchingAnything(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY, p_id int)`)
	tests := []struct {
		name string
		fk   plan.ForeignKey
		msg  string
	}{
		{"missing table", fk("x", "nope", parentID, "p", id, "", ""), "table public.nope does not exist"},
		{"missing column", fk("x", "c", []string{"parent"}, "p", id, "", ""), `column "parent" does not exist in public.c`},
		{"column count", fk("x", "c", []string{"p_id", "id"}, "p", id, "", ""), "as many columns"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := behave.Run(context.Background(), db.Pool, []plan.ForeignKey{tc.fk}, dbx.DefaultLockPolicy())
			require.ErrorIs(t, err, behave.ErrBadInput)
			assert.ErrorContains(t, err, tc.msg)
		})
	}
}

// census records every user table's row count and content checksum and
// every sequence's position; at least minTables tables and minSeqs
// sequences, so a census of the wrong database cannot pass unnoticed.
func census(t *testing.T, db *pgtest.DB, minTables, minSeqs int) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	rows, err := db.Pool.Query(ctx, `SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (plan.TableName, error) {
		var tn plan.TableName
		return tn, r.Scan(&tn.Schema, &tn.Name)
	})
	require.NoError(t, err)
	require.Greater(t, len(tables), minTables)
	for _, tb := range tables {
		var n int64
		var sum string
		require.NoError(t, db.Pool.QueryRow(ctx, "SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM "+tb.Sanitize()+" x").Scan(&n, &sum))
		out["rows "+tb.String()] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	rows, err = db.Pool.Query(ctx, `SELECT schemaname || '.' || sequencename, coalesce(last_value::text, 'unused') FROM pg_sequences`)
	require.NoError(t, err)
	seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var s [2]string
		return s, r.Scan(&s[0], &s[1])
	})
	require.NoError(t, err)
	require.Greater(t, len(seqs), minSeqs)
	for _, s := range seqs {
		out["seq "+s[0]] = s[1]
	}
	return out
}

// TestRunWaitsForLocksAsThePolicySays: a table the application holds locked
// fails the run after the policy's lock_timeout (55P03), not after some
// timeout of the behaviour tests' own.
func TestRunWaitsForLocksAsThePolicySays(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE p (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY, p_id int REFERENCES p (id))`)
	ctx := context.Background()
	holder, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback(ctx) }()
	_, err = holder.Exec(ctx, `LOCK TABLE c IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)

	for _, lt := range []time.Duration{150 * time.Millisecond, 1200 * time.Millisecond} {
		t.Run(lt.String(), func(t *testing.T) {
			p := dbx.DefaultLockPolicy()
			p.LockTimeout = lt
			start := time.Now()
			_, err := behave.Run(ctx, db.Pool, []plan.ForeignKey{fk("c_p_id_fkey", "c", []string{"p_id"}, "p", id, "", "")}, p)
			elapsed := time.Since(start)
			require.Error(t, err)
			assert.True(t, dbx.IsCode(err, dbx.CodeLockNotAvailable), "want 55P03, got %v", err)
			assert.GreaterOrEqual(t, elapsed, lt, "waited the policy's lock_timeout")
			assert.Less(t, elapsed, lt+time.Second, "and not much longer")
		})
	}
}
