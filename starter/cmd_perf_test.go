package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPerfCommandRefusesBadFlagsBeforeConnecting(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "w.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("operations: [{name: x}]"), 0o600))
	// No database exists at this DSN: a usage error must come first.
	dsn := "postgres://nobody@127.0.0.1:1/none"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--pairs", "1"}, "--pairs 1: want 2..50"},
		{[]string{"--max-rounds", "0"}, "--max-rounds 0: want 1..10"},
		{[]string{"--workers", "0", "--slice", "0s"}, "--workers 0: want 1..256; --slice 0s"},
		{[]string{"--metric", "p42"}, `--metric "p42"`},
		{[]string{"--max-overhead-ms", "30", "--rollback-overhead-ms", "20"}, "--rollback-overhead-ms 20 is below --max-overhead-ms 30"},
		{[]string{"--workload", bad}, "--workload " + bad},
		{[]string{"--workload", "/no/such/file.yaml"}, "no such file"},
		{[]string{"--lock-timeout", "0s"}, "--lock-timeout must be positive"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			code, _, errOut := cli(t, append([]string{"perf", "--plan", migrationSQL, "--dsn", dsn}, c.args...)...)
			assert.Equal(t, 2, code, errOut)
			assert.Contains(t, errOut, c.want)
		})
	}
	code, _, errOut := cli(t, "perf", "--dsn", dsn)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--plan is required")
}

func TestPerfCommandOnDemoDatabase(t *testing.T) {
	db := demoDB(t, nil)
	db.Exec(t, "ALTER TABLE workflow_stages ADD CONSTRAINT fk_workflow_stages_workflow_instance FOREIGN KEY (workflow_instance_id) REFERENCES workflow_instances (id) ON DELETE CASCADE NOT VALID")
	before := fkCount(t, db, false)
	// 80 operations a slice: the bulk import (1 in 12) is in every slice.
	code, out, errOut := cli(t, "perf", "--plan", migrationSQL, "--dsn", db.DSN, "--workers", "2", "--iterations", "80", "--pairs", "3",
		"--warmup", "0s", "--max-rounds", "1", "--max-overhead-ms", "1000", "--rollback-overhead-ms", "5000")
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	for _, want := range []string{"OPERATION", "BASELINE", "WITH FKS", "OVERHEAD [95% CI]", "VERDICT", "create_workflow", "bulk_import_100 (100)",
		"verdict: pass", "already on the database, present on both sides: public.workflow_stages.fk_workflow_stages_workflow_instance"} {
		assert.Contains(t, out, want)
	}
	assert.Contains(t, errOut, "round 1/1")
	assert.Equal(t, before, fkCount(t, db, false), "left as found")

	// Tight limits a real run cannot meet on every operation: exit 1, with
	// the verdict named, still leaving the database as found.
	code, _, errOut = cli(t, "perf", "--plan", migrationSQL, "--dsn", db.DSN, "--workers", "2", "--iterations", "20", "--pairs", "2",
		"--warmup", "0s", "--max-rounds", "1", "--max-overhead-ms", "0.0001", "--rollback-overhead-ms", "0.0002")
	assert.Equal(t, 1, code, errOut)
	assert.Contains(t, errOut, "perf verdict")
	assert.Equal(t, before, fkCount(t, db, false))
}

// Ctrl-C during a slice with the keys added: the command stops and drops
// them on its way out.
func TestPerfCommandInterruptedLeavesTheDatabaseAsFound(t *testing.T) {
	db := demoDB(t, nil)
	before := fkCount(t, db, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(2*time.Second, cancel)
	var out, errb bytes.Buffer
	code := run(ctx, []string{"perf", "--plan", migrationSQL, "--dsn", db.DSN, "--workers", "2", "--slice", "400ms", "--pairs", "10",
		"--warmup", "0s", "--max-rounds", "1"}, &out, &errb)
	assert.Equal(t, 3, code, errb.String())
	assert.Contains(t, errb.String(), "interrupted")
	assert.Equal(t, before, fkCount(t, db, false))
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname LIKE 'fkrollout\_perf\_%'`))
}
