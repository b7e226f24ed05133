package main

import (
	"context"
	"github.com/fkrollout/fkrollout/internal/policy"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestE2EPerfPhaseOnStaging runs the demo plan with the perf phase on a
// real dev server and a real staging database: the interleaved comparison
// before the constraints (slices without and with the keys added NOT VALID,
// the database left as found), EXPLAIN with index creation requested after
// validation, and the verdict in the status. The thresholds are wide on purpose (the
// machine is shared): the test checks the wiring and the figures' shape,
// not a timing; the verdicts' logic is covered by workflows/perf_test.go.
func TestE2EPerfPhaseOnStaging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()

	staging := pgtest.New(t)
	seedDemo(t, staging, nil)
	pw := "pw-" + randHex(8)
	cfg := testConfig(t, map[string]string{"staging": withPassword(staging.DSN, pw)}, nil)

	tq := startRolloutWorker(t, c, "e2e-perf", cfg, nil, discardLogger())

	indexesBefore := staging.Count(t, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'")
	in := rollout.Input{
		Plan:         sqlassets.Migration,
		Requester:    rita,
		Environments: []rollout.EnvironmentInput{{Name: "staging"}},
		Skip:         skipAllBut(policy.SafeguardPerf),
		Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob}}},
		Thresholds:   rollout.Thresholds{MaxOverheadMS: 1000, RollbackOverheadMS: 5000},
		Perf:         &rollout.PerfInput{Enabled: true, Workers: 2, Iterations: 600, Warmup: "0s", CreateIndexes: true},
	}
	id := "e2e-perf-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)
	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	assert.Equal(t, rollout.StateCompleted, st.State, st.Summary())

	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	assert.Equal(t, perf.MethodInterleaved, p.Method)
	require.NotNil(t, p.Interleave)
	assert.Len(t, p.Interleave.Toggled, 16)
	assert.Equal(t, 12*p.Interleave.Rounds, p.Interleave.Slices, p.Markdown)
	require.NotNil(t, p.Comparison)
	assert.Len(t, p.Comparison.Rows, 4)
	for _, r := range p.Comparison.Rows {
		assert.Zero(t, r.WithFKsErrs, r.Operation)
	}
	assert.Zero(t, staging.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname LIKE 'fkrollout\_perf\_%'`))
	assert.Equal(t, perf.Pass, p.Verdict, p.Markdown)
	require.NotNil(t, p.Explain)
	assert.Len(t, p.Explain.FKChecks, 16)
	assert.NotEmpty(t, p.Explain.IndexesBuilt)
	assert.Equal(t, indexesBefore+int64(len(p.Explain.IndexesBuilt)), staging.Count(t, "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public'"))
	assert.Contains(t, p.Markdown, "| create_workflow |")

	// Perf inputs and reports carry no secret either.
	text := decodedHistory(t, historyJSON(t, ctx, c, id))
	for _, s := range cfg.Secrets() {
		assert.NotContains(t, text, s)
	}
	assert.NotContains(t, text, pw)
	assert.Contains(t, text, rollout.ActPerfInterleave)
	recordHistory(t, ctx, c, id, "history-perf-interleaved.json")
}
