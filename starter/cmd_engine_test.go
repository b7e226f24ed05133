package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

const (
	migrationSQL = "../sql/migration.sql"
	planYAML     = "../sql/plan.yaml"
)

// cli runs fkrollout in-process and returns exit code, stdout, stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func demoDB(t *testing.T, orphans map[string]int) *pgtest.DB {
	t.Helper()
	db := pgtest.New(t)
	ctx := context.Background()
	require.NoError(t, demo.Setup(ctx, db.Pool))
	_, err := demo.Seed(ctx, db.Pool, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 15, Seed: 11, Orphans: orphans})
	require.NoError(t, err)
	return db
}

func fkCount(t *testing.T, db *pgtest.DB, validatedOnly bool) int64 {
	q := `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace`
	if validatedOnly {
		q += " AND convalidated"
	}
	return db.Count(t, q)
}

func TestLintCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.sql")
	require.NoError(t, os.WriteFile(bad, []byte(`ALTER TABLE a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES b(id);`), 0o600))
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}
	pgDump := write("dump.sql", "SET statement_timeout = 0;\nALTER TABLE ONLY public.orders\n    ADD CONSTRAINT fk_orders_customers FOREIGN KEY (customer_id) REFERENCES public.customers;\n")
	comments := write("comments.sql", "-- nothing here yet\n/* still nothing */\n")
	empty := write("empty.sql", "")
	txt := write("plan.txt", "ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;")
	long := write("long.sql", "ALTER TABLE a ADD CONSTRAINT "+strings.Repeat("x", 64)+" FOREIGN KEY (b_id) REFERENCES b (id) NOT VALID;")
	cases := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"demo migration is clean", []string{"lint", "--plan", migrationSQL}, 0, "16 foreign key(s)", ""},
		{"yaml plan is clean", []string{"lint", "--plan", planYAML}, 0, "16 foreign key(s)", ""},
		{"missing NOT VALID and ON DELETE: made safe by the rollout", []string{"lint", "--plan", bad}, 0, "info [missing-not-valid]", ""},
		{"missing NOT VALID and ON DELETE, strict", []string{"lint", "--plan", bad, "--strict"}, 1, "error [missing-not-valid]", "lint error"},
		{"pg_dump file, implicit referenced columns", []string{"lint", "--plan", pgDump}, 0, "info [implicit-ref-columns]", ""},
		{"comment-only file", []string{"lint", "--plan", comments}, 3, "", "plan is empty"},
		{"empty file", []string{"lint", "--plan", empty}, 3, "", "plan is empty"},
		{"unknown extension", []string{"lint", "--plan", txt}, 3, "", `".txt"`},
		{"identifier over 63 bytes", []string{"lint", "--plan", long}, 1, "name-too-long", "lint error"},
		{"rules", []string{"lint", "--rules"}, 0, "missing-not-valid", ""},
		{"missing file", []string{"lint", "--plan", filepath.Join(dir, "nope.sql")}, 3, "", "nope.sql"},
		{"no --plan", []string{"lint"}, 2, "", "--plan is required"},
		{"unknown flag", []string{"lint", "--plan", migrationSQL, "--bogus"}, 2, "", "bogus"},
		{"help", []string{"lint", "-h"}, 0, "--plan", ""},
		{"flag package spelling", []string{"lint", "-plan", migrationSQL, "-strict"}, 0, "16 foreign key(s)", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := cli(t, c.args...)
			assert.Equal(t, c.code, code, "stdout=%s stderr=%s", out, errs)
			assert.Contains(t, out, c.inStdout)
			assert.Contains(t, errs, c.inStderr)
		})
	}
	code, out, _ := cli(t, "lint", "--plan", migrationSQL, "--json")
	require.Equal(t, 0, code)
	var got struct {
		ForeignKeys int `json:"foreign_keys"`
		Findings    []struct {
			Severity string `json:"severity"`
		} `json:"findings"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.Equal(t, 16, got.ForeignKeys)
	for _, f := range got.Findings {
		assert.NotEqual(t, "error", f.Severity)
	}
}

func TestCheckAuditRemediate(t *testing.T) {
	injected := map[string]int{"fk_workflow_instances_config_version": 3, "fk_punchlist_items_punchlist": 2}
	db := demoDB(t, injected)

	code, out, errs := cli(t, "check", "--plan", migrationSQL, "--dsn", db.DSN)
	assert.Equal(t, 0, code, errs)
	assert.Contains(t, out, "ok: 16 foreign key(s)")

	// The DSN may come from the environment, and is never echoed.
	t.Setenv(DSNEnv, db.DSN)
	code, out, errs = cli(t, "audit", "--plan", planYAML, "--json")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "5 orphan row(s) in 2 foreign key(s)")
	assert.NotContains(t, out+errs, db.DSN)
	var rep struct {
		Orphans int64 `json:"orphans"`
		Results []struct {
			FK      string `json:"fk"`
			Orphans int64  `json:"orphans"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.EqualValues(t, 5, rep.Orphans)
	require.Len(t, rep.Results, 16)
	for _, r := range rep.Results {
		want := int64(0)
		for name, n := range injected {
			if regexp.MustCompile(`\b` + name + `$`).MatchString(r.FK) {
				want = int64(n)
			}
		}
		assert.Equal(t, want, r.Orphans, r.FK)
	}

	// Apply refuses nothing here (orphans are VALIDATE's problem), but
	// remediation then makes the audit clean, with the rows quarantined.
	for _, fk := range []string{"fk_workflow_instances_config_version", "fk_punchlist_items_punchlist"} {
		code, out, errs = cli(t, "remediate-orphans", "--plan", planYAML, "--fk", fk, "--mode", "delete", "--rollout-id", "r-remediate")
		require.Equal(t, 0, code, errs)
		assert.Contains(t, out, "delete")
	}
	assert.EqualValues(t, 5, db.Count(t, "SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = 'r-remediate'"))
	code, out, errs = cli(t, "audit", "--plan", planYAML)
	assert.Equal(t, 0, code, errs)
	assert.Contains(t, out, "PASS")
	assert.NotContains(t, out, "FAIL")

	code, _, errs = cli(t, "remediate-orphans", "--plan", planYAML, "--fk", "fk_nope", "--mode", "delete", "--rollout-id", "r")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "fk_nope")
	code, _, errs = cli(t, "remediate-orphans", "--plan", planYAML, "--fk", "fk_punchlist_items_punchlist", "--mode", "drop", "--rollout-id", "r")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "--mode")
}

func TestApplyValidateVerifyRollback(t *testing.T) {
	db := demoDB(t, nil)
	require.EqualValues(t, 1, fkCount(t, db, false), "the demo schema's one FK before")
	dsn := []string{"--dsn", db.DSN}

	code, _, errs := cli(t, append([]string{"apply", "--plan", migrationSQL}, dsn...)...)
	assert.Equal(t, 2, code, "apply without --rollout-id")
	assert.Contains(t, errs, "--rollout-id")

	code, out, errs := cli(t, append([]string{"apply", "--plan", migrationSQL, "--rollout-id", "r1", "--lock-timeout", "500ms", "--attempts", "8"}, dsn...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "created")
	assert.EqualValues(t, 17, fkCount(t, db, false))
	assert.EqualValues(t, 1, fkCount(t, db, true), "NOT VALID until validate")

	code, out, _ = cli(t, append([]string{"verify", "--plan", migrationSQL}, dsn...)...)
	assert.Equal(t, 1, code, "not validated yet")
	assert.Contains(t, out, "MISSING")

	code, _, errs = cli(t, append([]string{"validate", "--plan", migrationSQL, "--quiet"}, dsn...)...)
	require.Equal(t, 0, code, errs)
	assert.EqualValues(t, 17, fkCount(t, db, true))

	code, out, errs = cli(t, append([]string{"verify", "--plan", planYAML, "--json"}, dsn...)...)
	assert.Equal(t, 0, code, errs)
	var v struct {
		OK          bool              `json:"ok"`
		Constraints []json.RawMessage `json:"constraints"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	assert.True(t, v.OK)
	assert.Len(t, v.Constraints, 16)

	// Applying again is idempotent: nothing added, validation kept; under
	// another rollout id the keys are reported as existing, not owned.
	code, _, errs = cli(t, append([]string{"apply", "--plan", migrationSQL, "--rollout-id", "r1", "--quiet"}, dsn...)...)
	assert.Equal(t, 0, code, errs)
	assert.EqualValues(t, 17, fkCount(t, db, true))
	code, out, errs = cli(t, append([]string{"apply", "--plan", migrationSQL, "--rollout-id", "other", "--quiet"}, dsn...)...)
	assert.Equal(t, 0, code, errs)
	assert.Contains(t, out, "exists-same")
	assert.NotContains(t, out, "created")
	assert.EqualValues(t, 17, fkCount(t, db, false))

	code, out, errs = cli(t, append([]string{"rollback", "--plan", migrationSQL, "--rollout-id", "r1"}, dsn...)...)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "dropped")
	assert.EqualValues(t, 1, fkCount(t, db, false), "only the pre-existing FK survives")
}

func TestApplyRefusesWhenCheckFails(t *testing.T) {
	db := demoDB(t, nil)
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	require.NoError(t, os.WriteFile(plan, []byte(`name: broken
foreign_keys:
  - name: fk_workflow_stages_workflow_instance
    table: public.workflow_stages
    columns: [workflow_instance_id]
    references: public.workflow_instances
    ref_columns: [id]
    on_delete: CASCADE
    priority: HIGH
  - name: fk_ghost_parent
    table: public.ghost_table
    columns: [parent_id]
    references: public.workspaces
    ref_columns: [id]
    on_delete: RESTRICT
    priority: LOW
  - name: fk_vendor_master_wrong_column
    table: public.vendor_master
    columns: [no_such_column]
    references: public.workspaces
    ref_columns: [id]
    on_delete: RESTRICT
    priority: LOW
`), 0o600))
	code, _, errs := cli(t, "check", "--plan", plan, "--dsn", db.DSN)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "ghost_table")
	assert.Contains(t, errs, "no_such_column", "every problem reported at once")

	code, _, errs = cli(t, "apply", "--plan", plan, "--dsn", db.DSN, "--rollout-id", "r2")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "refusing to change the database")
	assert.EqualValues(t, 1, fkCount(t, db, false), "nothing applied, not even the good key")

	code, _, errs = cli(t, "check", "--plan", migrationSQL)
	assert.Equal(t, 2, code, "no DSN")
	assert.Contains(t, errs, DSNEnv)
}

func TestStatsIndexesBehave(t *testing.T) {
	db := demoDB(t, nil)
	code, out, errs := cli(t, "stats", "--dsn", db.DSN, "--json")
	require.Equal(t, 0, code, errs)
	var snap struct {
		Tables       int `json:"tables"`
		ForeignKeys  int `json:"foreign_keys"`
		PartialIndex int `json:"partial_unique_indexes"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &snap))
	assert.Equal(t, 17, snap.Tables)
	assert.Equal(t, 1, snap.ForeignKeys)
	assert.Equal(t, 1, snap.PartialIndex)

	code, out, errs = cli(t, "indexes", "--plan", migrationSQL, "--dsn", db.DSN)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "MISSING")
	code, out, errs = cli(t, "indexes", "--plan", migrationSQL, "--dsn", db.DSN, "--create")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "created")
	code, out, _ = cli(t, "indexes", "--plan", migrationSQL, "--dsn", db.DSN)
	assert.Equal(t, 0, code)
	assert.NotContains(t, out, "MISSING")

	code, _, errs = cli(t, "apply", "--plan", migrationSQL, "--dsn", db.DSN, "--rollout-id", "rb", "--quiet")
	require.Equal(t, 0, code, errs)
	code, _, errs = cli(t, "validate", "--plan", migrationSQL, "--dsn", db.DSN, "--quiet")
	require.Equal(t, 0, code, errs)
	code, out, errs = cli(t, "behave", "--plan", migrationSQL, "--dsn", db.DSN)
	assert.Equal(t, 0, code, "stdout=%s stderr=%s", out, errs)
	assert.Contains(t, out, "insert-orphan-rejected")
	assert.NotContains(t, out, "failed")
}

func TestGenerateWritesPrismaLayout(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := cli(t, "generate", "--plan", planYAML, "--dir", dir, "--name", "add_master_tables_fks")
	require.Equal(t, 0, code, errs)
	matches, err := filepath.Glob(filepath.Join(dir, "*", "migration.sql"))
	require.NoError(t, err)
	require.Len(t, matches, 1)
	assert.Regexp(t, `/[0-9]{14}_add_master_tables_fks/migration.sql$`, matches[0])
	assert.Contains(t, out, matches[0])
	body, err := os.ReadFile(matches[0])
	require.NoError(t, err)
	assert.Contains(t, string(body), "NOT VALID")
	// The generated file lints clean.
	code, _, errs = cli(t, "lint", "--plan", matches[0])
	assert.Equal(t, 0, code, errs)

	code, _, errs = cli(t, "generate", "--plan", planYAML)
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "--dir")
}

func TestDemoDBCommand(t *testing.T) {
	name := "fkr_cli_demo_db_test"
	t.Cleanup(func() {
		if conn, err := pgx.Connect(context.Background(), pgtest.AdminDSN()); err == nil {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			conn.Close(context.Background())
		}
	})
	args := []string{"demo-db", "--admin-dsn", pgtest.AdminDSN(), "--name", name, "--drop",
		"--workspaces", "2", "--workflows", "5", "--orphans", "fk_vendor_master_workspace=2", "--json"}
	code, out, errs := cli(t, args...)
	require.Equal(t, 0, code, errs)
	var got struct {
		DSN    string           `json:"dsn"`
		Counts map[string]int64 `json:"counts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	assert.EqualValues(t, 10, got.Counts["workflow_instances"])
	assert.EqualValues(t, 12, got.Counts["vendor_master"], "10 seeded + 2 orphans")
	code, _, errs = cli(t, "audit", "--plan", planYAML, "--dsn", got.DSN)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "2 orphan row(s) in 1 foreign key(s)")

	code, _, errs = cli(t, "demo-db", "--admin-dsn", pgtest.AdminDSN(), "--name", name, "--orphans", "oops")
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "oops")
}

// Cobra runs the first of two commands with the same name and never says
// so: a second "rollback" would silently shadow the engine's.
func TestCommandNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range newRootCmd().Commands() {
		assert.False(t, seen[c.Name()], "command %q registered twice", c.Name())
		seen[c.Name()] = true
	}
	assert.True(t, seen["rollback"] && seen["revert"] && seen["remediate"] && seen["remediate-orphans"])
}

func TestBackupCommand(t *testing.T) {
	db := demoDB(t, nil)
	dir := t.TempDir()
	code, out, errs := cli(t, "backup", "--dsn", db.DSN, "--dir", dir, "--label", "before_fks", "--json")
	require.Equal(t, 0, code, errs)
	assert.NotContains(t, out+errs, db.DSN)
	var res struct {
		Artifacts []struct {
			Kind string `json:"kind"`
			Path string `json:"path"`
		} `json:"artifacts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.NotEmpty(t, res.Artifacts)
	for _, a := range res.Artifacts {
		assert.FileExists(t, a.Path)
		assert.Equal(t, dir, filepath.Dir(a.Path))
	}
	code, _, errs = cli(t, "backup", "--dsn", db.DSN)
	assert.Equal(t, 2, code)
	assert.Contains(t, errs, "--dir")
}
