package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// From a database without its keys to a migration that lints strictly and
// checks out against the same database, in the commands README gives.
func TestDiscoverCommand(t *testing.T) {
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	pgtest.DropForeignKeys(t, db)
	out := filepath.Join(t.TempDir(), "discovered.sql")

	cases := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"bad threshold", []string{"discover", "--dsn", db.DSN, "--threshold", "2"}, 2, "", "--threshold"},
		{"no database", []string{"discover"}, 2, "", "no database"},
		{"writes the migration", []string{"discover", "--dsn", db.DSN, "--out", out, "--quiet"}, 0, "public.invoice(customer_id) → public.customer(customer_id)", ""},
		{"refuses to overwrite", []string{"discover", "--dsn", db.DSN, "--out", out, "--quiet"}, 3, "", "--force"},
		{"overwrites with --force", []string{"discover", "--dsn", db.DSN, "--out", out, "--force", "--quiet"}, 0, "", ""},
		{"the migration lints strictly", []string{"lint", "--plan", out, "--strict"}, 0, "11 foreign key(s)", ""},
		{"and checks out", []string{"check", "--plan", out, "--dsn", db.DSN}, 0, "11 foreign key(s)", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, c.args...)
			assert.Equal(t, c.code, code, "stdout=%s stderr=%s", stdout, stderr)
			assert.Contains(t, stdout, c.inStdout)
			assert.Contains(t, stderr, c.inStderr)
		})
	}
	migration, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(migration), "ADD CONSTRAINT invoice_customer_id_fkey\nFOREIGN KEY (customer_id)")
	assert.Contains(t, string(migration), "NOT VALID")

	code, stdout, _ := cli(t, "discover", "--dsn", db.DSN, "--json", "--quiet")
	require.Equal(t, 0, code)
	var rep struct {
		Candidates []struct {
			Name       string  `json:"name"`
			Confidence float64 `json:"confidence"`
		} `json:"candidates"`
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep))
	assert.Len(t, rep.Candidates, 11)
}
