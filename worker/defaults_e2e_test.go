package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// On a worker whose policy allows no skip, a plain rollout without a
// production window (whose watch, on by default, has no sources on this
// worker either) and one that skips the perf phase are refused by the
// first activity, naming why; nothing in the database changes.
func TestE2ESafeguardsRefusedByTheWorkerPolicy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	staging, production := pgtest.New(t), pgtest.New(t)
	seedDemo(t, staging, nil)
	seedDemo(t, production, nil)
	cfg := testConfig(t, map[string]string{"staging": staging.DSN, "production": production.DSN}, nil)
	cfg.Policy.AllowSkip = nil
	tq := startRolloutWorker(t, c, "e2e-defaults", cfg, nil, discardLogger())
	fks := func(db *pgtest.DB) int64 {
		return db.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
	}
	before := fks(staging) + fks(production)

	for _, tc := range []struct {
		name string
		skip []string
		want []string
	}{
		{"plain start without a window", nil, []string{"environments[1] (production): the last environment needs a maintenance_window",
			`environment "production" has no monitor sources on this worker`, `skip: ["monitor"]`}},
		{"skipping the perf phase", []string{policy.SafeguardPerf, policy.SafeguardWindow}, []string{
			`skip: "perf" would turn off the perf phase`, `skip: "window" would turn off`, "policy.allow_skip: none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "e2e-defaults-" + randHex(4)
			run := startRollout(t, ctx, c, tq, id, rollout.Input{Plan: sqlassets.Migration, Requester: rita, Skip: tc.skip,
				Environments: []rollout.EnvironmentInput{{Name: "staging"}, {Name: "production"}},
				Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob}}}})
			var st rollout.Status
			err := run.Get(ctx, &st)
			require.Error(t, err)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.Contains(t, err.Error(), rollout.ErrTypePolicy)
		})
	}
	assert.Equal(t, before, fks(staging)+fks(production), "nothing changed")
}

// A rollback on the real worker runs the environment's rollback hooks
// around the drop: the before hook still sees the rollout's constraints,
// the after hook no longer does; both get the run id.
func TestE2ERollbackHooksAroundTheDrop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	staging := pgtest.New(t)
	seedDemo(t, staging, map[string]int{"fk_vendor_master_workspace": 2})
	cfg := testConfig(t, map[string]string{"staging": staging.DSN}, nil)
	log := filepath.Join(t.TempDir(), "hooks.log")
	hook := func(name string) config.Hook {
		return config.Hook{Name: name, Env: map[string]string{"LOG": log, "DB": staging.DSN},
			Command: []string{"sh", "-c", `echo "` + name + ` $FKROLLOUT_RUN_ID $(psql "$DB" -Atc "SELECT count(*) FROM fkrollout.constraints")" >> "$LOG"`}}
	}
	env := cfg.Environments["staging"]
	env.RollbackHooks = config.RollbackHooks{Before: []config.Hook{hook("stop-api")}, After: []config.Hook{hook("start-api")}}
	cfg.Environments["staging"] = env
	tq := startRolloutWorker(t, c, "e2e-rbhooks", cfg, nil, discardLogger())

	id := "e2e-rbhooks-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, rollout.Input{
		Plan: sqlassets.Migration, Requester: rita,
		Environments: []rollout.EnvironmentInput{{Name: "staging"}},
		Skip:         skipAllBut(),
		Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}},
	})
	waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
	var ack approval.Ack
	require.NoError(t, update(ctx, c, id, approval.UpdateRollback, approval.ControlInput{Actor: rita, Reason: "rehearse the runbook"}, &ack))
	// A rolled-back rollout closes failed (RolledBack) and carries its status.
	st, ok := rollout.OutcomeStatus(run.Get(ctx, nil))
	require.True(t, ok, "the rollout closes RolledBack with its status")
	assert.Equal(t, rollout.StateRolledBack, st.State)

	b, err := os.ReadFile(log)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 2, string(b))
	runID := run.GetRunID()
	assert.Regexp(t, `^stop-api `+runID+` [1-9][0-9]*$`, lines[0], "before the drop: the rollout's constraints are there")
	assert.Equal(t, "start-api "+runID+" 0", lines[1], "after the drop: none left")
	require.Len(t, st.Environments["staging"].RollbackHooks, 2)

	recordHistory(t, ctx, c, id, "history-defaults-rollback-hooks.json")
}

// The rollback rehearsed on staging with real data: after remediation and
// validation the rollout drops exactly its keys, adds them again and
// validates them again (the remediated rows stay remediated), then
// promotes to production as usual. Every key ends validated with its
// original definition in both databases, owned by the rollout.
func TestE2EChinookRollbackRehearsal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	staging, production := newChinookLab(t), newChinookLab(t)
	cfg := testConfig(t, map[string]string{"staging": pgtest.RoleDSN(t, staging.db), "production": pgtest.RoleDSN(t, production.db)}, nil)
	tq := startRolloutWorker(t, c, "chinook-rehearsal", cfg, nil, discardLogger())
	in := chinookInput(staging.dump, stagingThenProduction()...)
	in.RehearseRollback = true
	id := "chinook-rehearsal-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)
	go driveChinook(t, ctx, c, id, map[string]string{}, nil)
	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	require.Equal(t, rollout.StateCompleted, st.State, st.Summary())

	rh := st.Environments["staging"].Rehearsal
	require.NotNil(t, rh)
	require.Len(t, rh.Dropped, len(staging.original))
	assert.ElementsMatch(t, rh.Dropped, rh.Reapplied)
	assert.ElementsMatch(t, rh.Dropped, rh.Revalidated)
	assert.Nil(t, st.Environments["production"].Rehearsal, "only the first environment rehearses")
	for name, lab := range map[string]*chinookLab{"staging": staging, "production": production} {
		defs := lab.defs(t)
		for _, fk := range lab.original {
			assert.Equal(t, fk.Def, defs[fk.Name], "%s in %s", fk.Name, name)
		}
		assert.Zero(t, lab.db.Count(t, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated`), name)
		assert.Equal(t, int64(len(lab.original)), lab.db.Count(t, `SELECT count(*) FROM fkrollout.constraints WHERE rollout_id = $1`, id), "%s: every key owned by the rollout", name)
	}
	assert.Positive(t, staging.db.Count(t, `SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = $1`, id), "the rehearsal does not put remediated rows back")
	assert.Contains(t, st.Report(), "**Rollback rehearsed** in staging")

	recordHistory(t, ctx, c, id, "history-defaults-rehearsal.json")
}
