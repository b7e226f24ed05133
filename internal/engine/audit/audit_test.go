package audit

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

func tn(schema, name string) plan.TableName { return plan.TableName{Schema: schema, Name: name} }

const semanticsSchema = `
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE parent2 (a int, b int, PRIMARY KEY (a, b));
INSERT INTO parent VALUES (1), (2);
INSERT INTO parent2 VALUES (1, 1), (2, 2);
CREATE TABLE child (
    id int PRIMARY KEY,
    parent_id int,
    a int,
    b int
);
`

func TestAuditMatchSemantics(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, semanticsSchema)
	single := plan.ForeignKey{Name: "child_parent_fk", Table: tn("public", "child"), Columns: []string{"parent_id"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	comp := plan.ForeignKey{Name: "child_parent2_fk", Table: tn("public", "child"), Columns: []string{"a", "b"}, RefTable: tn("public", "parent2"), RefColumns: []string{"a", "b"}}
	compFull := comp
	compFull.Match = plan.MatchFull

	cases := []struct {
		name    string
		rows    string // INSERT INTO child (id, parent_id, a, b) VALUES ...
		fk      plan.ForeignKey
		orphans int64
	}{
		{"single matching", "(1, 1, NULL, NULL), (2, 2, NULL, NULL)", single, 0},
		{"single NULL is not an orphan", "(1, NULL, NULL, NULL)", single, 0},
		{"single missing parent", "(1, 1, NULL, NULL), (2, 99, NULL, NULL), (3, 98, NULL, NULL)", single, 2},
		{"composite simple matching", "(1, NULL, 1, 1), (2, NULL, 2, 2)", comp, 0},
		{"composite simple mismatched pair", "(1, NULL, 1, 2)", comp, 1},
		{"composite simple partial NULL is fine", "(1, NULL, 1, NULL), (2, NULL, NULL, 99)", comp, 0},
		{"composite simple all NULL is fine", "(1, NULL, NULL, NULL)", comp, 0},
		{"composite full partial NULL is an orphan", "(1, NULL, 1, NULL), (2, NULL, NULL, 99)", compFull, 2},
		{"composite full all NULL is fine", "(1, NULL, NULL, NULL)", compFull, 0},
		{"composite full mismatched", "(1, NULL, 1, 1), (2, NULL, 1, 2)", compFull, 1},
	}
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db.Exec(t, "TRUNCATE child")
			db.Exec(t, "INSERT INTO child (id, parent_id, a, b) VALUES "+tc.rows)
			r, err := AuditOne(ctx, db.Pool, tc.fk, Options{})
			require.NoError(t, err)
			assert.Equal(t, tc.orphans, r.Orphans)
			assert.Len(t, r.Samples, int(tc.orphans))
			assert.Equal(t, tc.fk.ID(), r.FK)
			// Cross-check with PostgreSQL itself.
			assert.Equal(t, tc.orphans == 0, validates(t, db, tc.fk))
		})
	}
}

// validates reports whether ADD CONSTRAINT ... NOT VALID; VALIDATE succeeds,
// inside a transaction that is rolled back.
func validates(t *testing.T, db *pgtest.DB, fk plan.ForeignKey) bool {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, fk.AddSQL(true))
	require.NoError(t, err, "NOT VALID add must always succeed")
	_, err = tx.Exec(ctx, fk.ValidateSQL())
	if err != nil {
		require.Contains(t, err.Error(), "23503", "validate failed for another reason: %v", err)
		return false
	}
	return true
}

func TestAuditQuotedIdentifiers(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `
CREATE SCHEMA "Sales Ops";
CREATE TABLE "Sales Ops"."Customer" ("CustomerID" int PRIMARY KEY);
CREATE TABLE "Sales Ops"."Order" ("Order ID" int PRIMARY KEY, "CustomerID" int, "select" int);
INSERT INTO "Sales Ops"."Customer" VALUES (1);
INSERT INTO "Sales Ops"."Order" VALUES (10, 1, 0), (11, 2, 0), (12, NULL, 0), (13, 3, 0);
`)
	fk := plan.ForeignKey{Name: "Order→Customer", Table: tn("Sales Ops", "Order"), Columns: []string{"CustomerID"},
		RefTable: tn("Sales Ops", "Customer"), RefColumns: []string{"CustomerID"}}
	r, err := AuditOne(context.Background(), db.Pool, fk, Options{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), r.Orphans)
	assert.Equal(t, []Sample{
		{Key: map[string]string{"Order ID": "11"}, FK: map[string]string{"CustomerID": "2"}},
		{Key: map[string]string{"Order ID": "13"}, FK: map[string]string{"CustomerID": "3"}},
	}, r.Samples)
	assert.Equal(t, `"Sales Ops"."Order"`, r.Table)
	assert.False(t, validates(t, db, fk))

	// A missing column is a clear error, not an SQL syntax error.
	bad := fk
	bad.Columns = []string{"customerid"}
	_, err = AuditOne(context.Background(), db.Pool, bad, Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no column(s) customerid")
}

func TestAuditSamples(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT g FROM generate_series(1, 10) g;
CREATE TABLE child (k1 text, k2 int, parent_id int, PRIMARY KEY (k1, k2));
-- 30 rows: k2 even -> orphan (parent 1000+k2), odd -> valid.
INSERT INTO child SELECT 'x', g, CASE WHEN g % 2 = 0 THEN 1000 + g ELSE 1 END FROM generate_series(1, 30) g;
CREATE TABLE nopk (parent_id int);
INSERT INTO nopk VALUES (1), (500), (NULL), (501);
`)
	ctx := context.Background()
	fk := plan.ForeignKey{Name: "child_fk", Table: tn("public", "child"), Columns: []string{"parent_id"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	r, err := AuditOne(ctx, db.Pool, fk, Options{SampleLimit: 4})
	require.NoError(t, err)
	assert.Equal(t, int64(15), r.Orphans)
	require.Len(t, r.Samples, 4)
	for i, s := range r.Samples {
		k2 := 2 * (i + 1) // ordered by primary key
		assert.Equal(t, map[string]string{"k1": "x", "k2": fmt.Sprint(k2)}, s.Key)
		assert.Equal(t, map[string]string{"parent_id": fmt.Sprint(1000 + k2)}, s.FK)
	}

	r, err = AuditOne(ctx, db.Pool, fk, Options{SampleLimit: -1})
	require.NoError(t, err)
	assert.Equal(t, int64(15), r.Orphans)
	assert.Empty(t, r.Samples)

	nopk := plan.ForeignKey{Name: "nopk_fk", Table: tn("public", "nopk"), Columns: []string{"parent_id"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	r, err = AuditOne(ctx, db.Pool, nopk, Options{})
	require.NoError(t, err)
	assert.Equal(t, int64(2), r.Orphans)
	require.Len(t, r.Samples, 2)
	for _, s := range r.Samples {
		assert.Contains(t, s.Key, "ctid")
		assert.True(t, strings.HasPrefix(s.Key["ctid"], "("))
	}
	assert.Equal(t, "500", r.Samples[0].FK["parent_id"])
	assert.Equal(t, "501", r.Samples[1].FK["parent_id"])
}

func TestAuditParallelEqualsSequential(t *testing.T) {
	db := pgtest.New(t)
	var fks []plan.ForeignKey
	var ddl strings.Builder
	ddl.WriteString("CREATE TABLE parent (id int PRIMARY KEY); INSERT INTO parent SELECT generate_series(1, 50);\n")
	for i := range 8 {
		fmt.Fprintf(&ddl, "CREATE TABLE child%d (id int PRIMARY KEY, pid int); INSERT INTO child%d SELECT g, CASE WHEN g %% %d = 0 THEN 100 + g ELSE 1 END FROM generate_series(1, 200) g;\n", i, i, i+2)
		fks = append(fks, plan.ForeignKey{Name: fmt.Sprintf("child%d_fk", i), Table: tn("public", fmt.Sprintf("child%d", i)),
			Columns: []string{"pid"}, RefTable: tn("public", "parent"), RefColumns: []string{"id"}})
	}
	db.Exec(t, ddl.String())
	ctx := context.Background()
	var calls atomic.Int32
	par, err := Audit(ctx, db.Pool, fks, Options{Parallelism: 4, Progress: func(done, total int, fk string) {
		calls.Add(1)
		assert.Equal(t, 8, total)
	}})
	require.NoError(t, err)
	assert.Equal(t, int32(8), calls.Load())
	seq, err := Audit(ctx, db.Pool, fks, Options{Parallelism: 1})
	require.NoError(t, err)
	require.Len(t, par, 8)
	for i := range par {
		assert.Equal(t, fks[i].ID(), par[i].FK, "input order")
		assert.Equal(t, int64(200/(i+2)), par[i].Orphans)
		par[i].DurationMS, seq[i].DurationMS = 0, 0
	}
	assert.Equal(t, seq, par)
}

func TestAuditStatementTimeout(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent SELECT generate_series(1, 200);
-- Every parent row costs 20 ms to read: the audit cannot finish in 100 ms.
CREATE VIEW slow_parent AS SELECT id FROM parent WHERE pg_sleep(0.02) IS NOT NULL;
CREATE TABLE child (id int PRIMARY KEY, pid int);
INSERT INTO child VALUES (1, 1), (2, 999);
`)
	fk := plan.ForeignKey{Name: "child_slow_fk", Table: tn("public", "child"), Columns: []string{"pid"}, RefTable: tn("public", "slow_parent"), RefColumns: []string{"id"}}
	start := time.Now()
	_, err := Audit(context.Background(), db.Pool, []plan.ForeignKey{fk}, Options{StatementTimeout: 100 * time.Millisecond})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second)
	assert.Contains(t, err.Error(), fk.ID())
	assert.Contains(t, err.Error(), "statement_timeout")
	assert.Contains(t, err.Error(), "57014")
}

// TestAuditMatchesValidate is the property: on random data, the audit
// reports 0 orphans exactly when PostgreSQL's VALIDATE CONSTRAINT succeeds,
// and the count equals a brute-force count computed in Go.
func TestAuditMatchesValidate(t *testing.T) {
	db := pgtest.New(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	ctx := context.Background()
	zeros := 0
	for iter := range 40 {
		ncols := 1 + rng.Intn(3)
		match := plan.MatchSimple
		if rng.Intn(2) == 0 {
			match = plan.MatchFull
		}
		cols := make([]string, ncols)
		refCols := make([]string, ncols)
		for i := range cols {
			cols[i] = fmt.Sprintf("C%d", i)
			refCols[i] = fmt.Sprintf("r%d", i)
		}
		// Parents: distinct random tuples over a small domain.
		parents := map[string][]int{}
		for range rng.Intn(6) {
			tup := make([]int, ncols)
			for i := range tup {
				tup[i] = rng.Intn(3)
			}
			parents[fmt.Sprint(tup)] = tup
		}
		var b strings.Builder
		b.WriteString(`DROP SCHEMA IF EXISTS "P" CASCADE; CREATE SCHEMA "P";`)
		fmt.Fprintf(&b, `CREATE TABLE "P".parent (%s, PRIMARY KEY (%s));`, colDefs(refCols), quoteAll(refCols))
		for _, tup := range parents {
			fmt.Fprintf(&b, `INSERT INTO "P".parent VALUES (%s);`, ints(tup))
		}
		fmt.Fprintf(&b, `CREATE TABLE "P".child (id int PRIMARY KEY, %s);`, colDefs(cols))
		// Children: values from a domain slightly larger than the parents',
		// each with a chance of NULL; sometimes force a clean table.
		clean := rng.Intn(3) == 0
		var want int64
		for id := range rng.Intn(12) {
			vals := make([]*int, ncols)
			for i := range vals {
				if rng.Intn(4) == 0 {
					continue
				}
				v := rng.Intn(4)
				vals[i] = &v
			}
			if clean {
				if len(parents) == 0 || rng.Intn(2) == 0 {
					vals = make([]*int, ncols) // all NULL
				} else {
					for _, tup := range parents {
						for i := range vals {
							v := tup[i]
							vals[i] = &v
						}
						break
					}
				}
			}
			if isOrphan(vals, parents, match) {
				want++
			}
			fmt.Fprintf(&b, `INSERT INTO "P".child VALUES (%d, %s);`, id, nullableInts(vals))
		}
		db.Exec(t, b.String())
		fk := plan.ForeignKey{Name: "prop_fk", Table: tn("P", "child"), Columns: cols, RefTable: tn("P", "parent"), RefColumns: refCols, Match: match}
		r, err := AuditOne(ctx, db.Pool, fk, Options{SampleLimit: 100})
		require.NoError(t, err, "iteration %d seed %d", iter, seed)
		assert.Equal(t, want, r.Orphans, "iteration %d seed %d: brute-force count", iter, seed)
		assert.Len(t, r.Samples, int(r.Orphans))
		// The one-pass audit (one page per chunk) agrees on the same data.
		one, err := Audit(ctx, db.Pool, []plan.ForeignKey{fk}, Options{SampleLimit: 100, ChunkPages: 1})
		require.NoError(t, err, "iteration %d seed %d", iter, seed)
		one[0].DurationMS, r.DurationMS = 0, 0
		assert.Equal(t, r, one[0], "iteration %d seed %d: one-pass audit", iter, seed)
		assert.Equal(t, r.Orphans == 0, validates(t, db, fk), "iteration %d seed %d: audit %d orphans vs VALIDATE", iter, seed, r.Orphans)
		if r.Orphans == 0 {
			zeros++
		}
	}
	t.Logf("%d of 40 iterations clean", zeros)
}

func isOrphan(vals []*int, parents map[string][]int, m plan.MatchType) bool {
	nulls := 0
	for _, v := range vals {
		if v == nil {
			nulls++
		}
	}
	switch {
	case nulls == len(vals):
		return false
	case nulls > 0:
		return m == plan.MatchFull
	}
	tup := make([]int, len(vals))
	for i, v := range vals {
		tup[i] = *v
	}
	_, ok := parents[fmt.Sprint(tup)]
	return !ok
}

func colDefs(cols []string) string {
	d := make([]string, len(cols))
	for i, c := range cols {
		d[i] = quote(c) + " int"
	}
	return strings.Join(d, ", ")
}

func quoteAll(cols []string) string {
	d := make([]string, len(cols))
	for i, c := range cols {
		d[i] = quote(c)
	}
	return strings.Join(d, ", ")
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}

func nullableInts(v []*int) string {
	s := make([]string, len(v))
	for i, x := range v {
		if x == nil {
			s[i] = "NULL"
		} else {
			s[i] = fmt.Sprint(*x)
		}
	}
	return strings.Join(s, ", ")
}
