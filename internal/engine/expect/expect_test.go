package expect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// schema: 5 tables (a partitioned one counts once), 2 CHECKs (the
// partitions' inherited copies do not count), 2 validated FKs (one with a
// bigint column referencing an integer key), 1 NOT VALID FK.
const schema = `
CREATE TABLE customers (id integer PRIMARY KEY, name text);
CREATE TABLE orders (id integer PRIMARY KEY, customer_id bigint REFERENCES customers(id), amount numeric CHECK (amount > 0));
CREATE TABLE items (id integer PRIMARY KEY, order_id integer);
ALTER TABLE items ADD CONSTRAINT fk_items_order FOREIGN KEY (order_id) REFERENCES orders(id) NOT VALID;
CREATE TABLE notes (id integer PRIMARY KEY, customer_id integer REFERENCES customers(id));
CREATE TABLE events (at date NOT NULL, kind text CHECK (kind <> '')) PARTITION BY RANGE (at);
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
CREATE SCHEMA other; CREATE TABLE other.t (id int PRIMARY KEY, c int CHECK (c > 0));
INSERT INTO customers VALUES (1, 'a'), (2, 'b');
INSERT INTO orders VALUES (10, 1, 50), (11, 2, 150);
`

func TestMeasureCountsWhatTheRunbookCounts(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	f, err := Measure(context.Background(), db.Pool, []string{"public"}, dbx.DefaultLockPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if f.ForeignKeys != 2 || f.ForeignKeysNotValid != 1 || f.CheckConstraints != 2 || f.Tables != 5 {
		t.Errorf("figures %+v, want 2 validated FKs, 1 NOT VALID, 2 CHECKs, 5 tables", f)
	}
	if len(f.TypeMismatches) != 1 || !strings.Contains(f.TypeMismatches[0], "orders.customer_id bigint → customers.id integer") {
		t.Errorf("type mismatches %q, want orders.customer_id bigint → customers.id integer", f.TypeMismatches)
	}
}

func TestCheckComparesEveryExpectation(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	str := func(s string) *string { return &s }
	yes := true
	lock := dbx.LockPolicy{LockTimeout: 50 * time.Millisecond, Attempts: 2, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	in := Input{
		Schemas: []string{"public"},
		Plan: &plan.Expectations{ForeignKeys: plan.AtLeast(3), CheckConstraints: plan.Exactly(2), Tables: plan.Exactly(5),
			Orphans: plan.Exactly(0), TypesAligned: &yes, Queries: []string{"big orders", "not configured"}},
		Worker: Config{Tables: &plan.Count{Min: ptr(1), Max: ptr(4)}, Queries: []Query{
			{Name: "big orders", SQL: "SELECT count(*) FROM orders WHERE amount > 100", ExpectValue: str("1")},
			{Name: "customers", SQL: "SELECT name FROM customers ORDER BY id", ExpectValue: str("a"), ExpectRows: plan.Exactly(3)},
			{Name: "sneaky delete", SQL: "WITH d AS (DELETE FROM orders RETURNING 1) SELECT count(*) FROM d", ExpectValue: str("0")},
			{Name: "null first", SQL: "SELECT NULL::int", ExpectValue: str("NULL")},
		}},
		Orphans: 0, OrphansKnown: true,
	}
	got, err := Check(context.Background(), db.Pool, lock, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name, source, actual string
		ok                   bool
		detail               string
	}{
		{"Validated foreign keys", SourcePlan, "2", false, "1 more NOT VALID"},
		{"CHECK constraints", SourcePlan, "2", true, ""},
		{"Tables", SourcePlan, "5", true, ""},
		{"Orphaned rows (planned constraints)", SourcePlan, "0", true, ""},
		{"Column types aligned", SourcePlan, "1 mismatch(es)", false, "orders.customer_id bigint"},
		{"Tables", SourceWorker, "5", false, ""},
		{"Runbook query not configured", SourcePlan, "not configured", false, "defined: big orders, customers, null first, sneaky delete"},
		{"Runbook query big orders", SourceWorker, `value "1"`, true, ""},
		{"Runbook query customers", SourceWorker, `value "a", rows 2`, false, ""},
		{"Runbook query sneaky delete", SourceWorker, "error", false, "read-only transaction"},
		{"Runbook query null first", SourceWorker, `value "NULL"`, true, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.name || g.Source != w.source || g.Actual != w.actual || g.OK != w.ok || !strings.Contains(g.Detail, w.detail) {
			t.Errorf("result %d = %+v, want %+v", i, g, w)
		}
	}
	if n := db.Count(t, "SELECT count(*) FROM orders"); n != 2 {
		t.Errorf("orders has %d rows after the checks, want 2: a runbook query wrote", n)
	}
}

func TestRunbookQueryWaitsOnlyAsLongAsTheLockPolicy(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, schema)
	ctx := context.Background()
	holder, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	lock := dbx.LockPolicy{LockTimeout: 50 * time.Millisecond, Attempts: 2, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	_, err = Run(ctx, db.Pool, Query{Name: "q", SQL: "SELECT count(*) FROM orders", ExpectValue: new(string)}, lock)
	if err == nil || !dbx.IsCode(err, dbx.CodeLockNotAvailable) {
		t.Fatalf("error %v, want lock_not_available after the policy's attempts", err)
	}
}

func TestNothingStatedRunsNothing(t *testing.T) {
	got, err := Check(context.Background(), nil, dbx.DefaultLockPolicy(), Input{OrphansKnown: true})
	if err != nil || len(got) != 0 {
		t.Fatalf("got %v, %v; want no result and no database access", got, err)
	}
}

func TestConfigValidateNamesQueryAndField(t *testing.T) {
	c := Config{Tables: &plan.Count{}, Queries: []Query{
		{Name: "w", SQL: "DELETE FROM orders", ExpectRows: plan.Exactly(0)},
		{Name: "w", SQL: "SELECT 1; SELECT 2", ExpectRows: plan.Exactly(0)},
		{Name: "into", SQL: "SELECT 1 INTO t", ExpectRows: plan.Exactly(0)},
		{SQL: "SELECT (", ExpectRows: &plan.Count{Min: ptr(3), Max: ptr(1)}},
		{Name: "nothing", SQL: "SELECT 1"},
	}}
	err := c.Validate("environments.staging.expect")
	if err == nil {
		t.Fatal("validated")
	}
	for _, w := range []string{
		"environments.staging.expect.tables: states no figure",
		"expect.queries[0] (w).sql: is not a SELECT",
		`expect.queries[1] (w).name: "w" is used twice`,
		"expect.queries[1] (w).sql: holds 2 statements",
		"expect.queries[2] (into).sql: SELECT INTO creates a table",
		"expect.queries[3].name: required",
		"expect.queries[3].sql: does not parse",
		"expect.queries[3].expect_rows: min 3 is above max 1",
		"expect.queries[4] (nothing): needs expect_value or expect_rows",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not mention %q", err, w)
		}
	}
}

func ptr(n int64) *int64 { return &n }
