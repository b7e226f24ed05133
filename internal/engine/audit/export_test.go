package audit

import (
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// Chinook without its foreign keys; 7 invoices point at customers that do
// not exist, one with a billing address a spreadsheet would run.
func chinookWithOrphanInvoices(t *testing.T) (*pgtest.DB, plan.ForeignKey) {
	t.Helper()
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	pgtest.DropForeignKeys(t, db)
	db.Exec(t, `UPDATE invoice SET customer_id = 9000 + invoice_id WHERE invoice_id IN (3, 5, 8, 13, 21, 34, 55)`)
	db.Exec(t, `UPDATE invoice SET billing_address = '=HYPERLINK("http://x")', billing_state = NULL WHERE invoice_id = 5`)
	return db, plan.ForeignKey{Name: "fk_invoice_customer_id", Table: tn("public", "invoice"), Columns: []string{"customer_id"},
		RefTable: tn("public", "customer"), RefColumns: []string{"customer_id"}}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return recs
}

func TestExportOrphansWritesEveryOrphanWithContext(t *testing.T) {
	db, fk := chinookWithOrphanInvoices(t)
	dir := filepath.Join(t.TempDir(), "orphans", "round-1")
	tests := []struct {
		name      string
		max       int64
		rows      int64
		truncated bool
	}{
		{"all of them", 0, 7, false},
		{"cut at the configured maximum", 3, 3, true},
		{"maximum equal to the count", 7, 7, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := ExportOrphans(context.Background(), db.Pool, fk, ExportOptions{Dir: dir, MaxRows: tc.max, Columns: []string{"invoice_date", "billing_address", "billing_state", "total"}})
			require.NoError(t, err)
			assert.Equal(t, int64(7), ex.Orphans)
			assert.Equal(t, tc.rows, ex.Rows)
			assert.Equal(t, tc.truncated, ex.Truncated)
			assert.Equal(t, filepath.Join(dir, "fk_invoice_customer_id.csv"), ex.Path)
			assert.Len(t, ex.SHA256, 64)
			fi, err := os.Stat(ex.Path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "orphan rows may be sensitive")
			recs := readCSV(t, ex.Path)
			assert.Equal(t, []string{"invoice_id", "customer_id", "invoice_date", "billing_address", "billing_state", "total"}, recs[0])
			require.Len(t, recs, int(tc.rows)+1)
			wantIDs := []string{"3", "5", "8", "13", "21", "34", "55"}[:tc.rows]
			for i, id := range wantIDs {
				assert.Equal(t, id, recs[i+1][0])
				assert.Equal(t, "90"+strings.Repeat("0", 2-len(id))+id, recs[i+1][1], "customer_id of invoice %s", id)
			}
			assert.Equal(t, `'=HYPERLINK("http://x")`, recs[2][3], "a formula is neutralised")
			assert.Equal(t, "", recs[2][4], "NULL is an empty cell")
			// The count agrees with the audit's.
			res, err := AuditOne(context.Background(), db.Pool, fk, Options{})
			require.NoError(t, err)
			assert.Equal(t, res.Orphans, ex.Orphans)
		})
	}
}

func TestExportOrphansRefusesUnknownColumnAndLeavesNoFile(t *testing.T) {
	db, fk := chinookWithOrphanInvoices(t)
	dir := t.TempDir()
	_, err := ExportOrphans(context.Background(), db.Pool, fk, ExportOptions{Dir: dir, Columns: []string{"password_hash"}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `export column "password_hash": table public.invoice has no such column`)
	left, _ := os.ReadDir(dir)
	assert.Empty(t, left, "a failed export leaves no file behind")
}

func TestCellText(t *testing.T) {
	for in, want := range map[string]string{"-12.5": "-12.5", "+3": "+3", "-x": "'-x", "@cmd": "'@cmd", "=1+1": "'=1+1", "plain": "plain", "": ""} {
		assert.Equal(t, want, cellText(in), in)
	}
}

// BenchmarkExportOrphans writes 100 000 orphan rows (key, FK column and
// two context columns) to CSV: the cost of the full list at the default
// maximum. go test ./internal/engine/audit -run '^$' -bench ExportOrphans -benchtime 3x
func BenchmarkExportOrphans(b *testing.B) {
	db := pgtest.New(b)
	db.Exec(b, `CREATE TABLE parent (id bigint PRIMARY KEY);
		CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint, created_at timestamptz DEFAULT now(), note text);
		INSERT INTO child (id, parent_id, note) SELECT g, g + 1000000, 'row ' || g FROM generate_series(1, 100000) g;
		ANALYZE child;`)
	fk := plan.ForeignKey{Name: "fk_child_parent", Table: tn("public", "child"), Columns: []string{"parent_id"},
		RefTable: tn("public", "parent"), RefColumns: []string{"id"}}
	dir := b.TempDir()
	b.ResetTimer()
	for range b.N {
		ex, err := ExportOrphans(context.Background(), db.Pool, fk, ExportOptions{Dir: dir, Columns: []string{"created_at", "note"}})
		if err != nil || ex.Rows != 100000 {
			b.Fatalf("export: %+v, %v", ex, err)
		}
	}
}
