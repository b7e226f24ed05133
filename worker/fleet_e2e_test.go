package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestE2EFleetRollout rolls the demo plan out to three real databases as a
// fleet on a real dev server: a canary, the wave gate (four-eyes refusal,
// then an approver, through the decide Update), then a batch of two at
// once. Every database ends with every constraint validated and owned by
// its own child rollout.
func TestE2EFleetRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()

	targets := []string{"tenant_a", "tenant_b", "tenant_c"}
	dbs := map[string]*pgtest.DB{}
	dsns := map[string]string{}
	pw := "pw-" + randHex(8)
	for _, name := range targets {
		db := pgtest.New(t)
		seedDemo(t, db, nil)
		dbs[name], dsns[name] = db, withPassword(db.DSN, pw)
	}
	cfg := testConfig(t, dsns, nil)
	tq := startRolloutWorker(t, c, "e2e-fleet", cfg, nil, discardLogger())

	id := "e2e-fleet-" + randHex(4)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, fleet.WorkflowName, fleet.Input{
		Plan: sqlassets.Migration, Requester: rita, Targets: targets, Canary: 1, BatchSize: 2,
		Approval: approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob, rita}}},
		// This test is about waves and gates: the fleet turns the
		// safeguards off in every child, as the worker's policy allows.
		Skip: skipAllBut(),
	})
	require.NoError(t, err)

	var gated fleet.Status
	require.Eventually(t, func() bool {
		v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
		if err != nil || v.Get(&gated) != nil {
			return false
		}
		return gated.OpenGate != nil || gated.Terminal()
	}, 90*time.Second, 250*time.Millisecond, "wave gate never opened")
	require.NotNil(t, gated.OpenGate, "fleet ended before its gate: %s %s", gated.State, gated.Error)
	assert.Equal(t, "fleet/wave/1", gated.OpenGate.ID)
	assert.Equal(t, "wave-1/2", gated.Phase)
	assert.Equal(t, rollout.StateCompleted, gated.Targets[0].State, "canary done")
	assert.Equal(t, rollout.StatePending, gated.Targets[1].State, "batch waits for the gate")
	assert.Equal(t, rollout.StatePending, gated.Targets[2].State)
	p, err := sqlplan.ParseAuto(sqlassets.Migration)
	require.NoError(t, err)
	assert.Zero(t, dbs["tenant_b"].Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = ANY($1)", fkNames(p)),
		"nothing applied to the batch before the gate")

	var view approval.GateView
	err = update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: rita}, &view)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "four-eyes")
	require.NoError(t, update(ctx, c, id, approval.UpdateDecide,
		approval.DecisionInput{GateID: "fleet/wave/1", Choice: approval.ChoiceApprove, Actor: alice, Reason: "canary clean", Via: "e2e"}, &view))
	assert.Equal(t, approval.GateDecided, view.Status)

	var st fleet.Status
	require.NoError(t, run.Get(ctx, &st))
	// The fleet and its canary child join the replay corpus (-record).
	recordHistory(t, ctx, c, id, "history-fleet.json")
	recordHistory(t, ctx, c, id+"/"+st.Targets[0].Name, "history-fleet-child.json")
	assert.Equal(t, rollout.StateCompleted, st.State, st.Error)
	assert.Equal(t, 3, st.Succeeded)
	require.Len(t, st.Decisions, 1)
	assert.Equal(t, alice, st.Decisions[0].Actor)
	// The worker wrote the fleet's completion report next to the children's.
	require.NotEmpty(t, st.ReportPath)
	fleetReport, err := os.ReadFile(st.ReportPath)
	require.NoError(t, err)
	assert.Contains(t, string(fleetReport), "# ✅ FK Fleet Rollout")
	assert.Contains(t, string(fleetReport), "| Databases Succeeded | 3 | 3 | ✅ PASS (100%) |")
	assert.Contains(t, string(fleetReport), fmt.Sprintf("| FK Constraints Validated (all databases) | %d | %d |", 3*len(p.ForeignKeys), 3*len(p.ForeignKeys)))
	b, cc := st.Targets[1], st.Targets[2]
	require.NotNil(t, b.StartedAt)
	require.NotNil(t, cc.StartedAt)
	assert.False(t, b.StartedAt.Before(st.Decisions[0].Time), "the batch started after the approval")
	assert.WithinDuration(t, *b.StartedAt, *cc.StartedAt, time.Second, "a wave's databases start together")

	for _, tg := range st.Targets {
		assert.Equal(t, id+"/"+tg.Name, tg.ChildID)
		assert.Equal(t, rollout.StateCompleted, tg.State, tg.Name)
		assert.Equal(t, len(p.ForeignKeys), tg.Validated, tg.Name)
		child := queryStatusT(t, ctx, c, tg.ChildID)
		assert.Equal(t, rollout.StateCompleted, child.State)
		assert.Equal(t, []string{tg.Name}, child.EnvironmentOrder)
		assert.Equal(t, skipAllBut(), child.SafeguardsOff, "the child ran with the fleet's skip")

		db := dbs[tg.Name]
		vs, err := migrate.Verify(ctx, db.Pool, p)
		require.NoError(t, err)
		for _, v := range vs {
			assert.True(t, v.Exists && v.Validated, "%s %s", tg.Name, v.FK)
			assert.Equal(t, tg.ChildID, v.OwnerRollout, "owned by the database's own child rollout")
		}
		assert.Zero(t, db.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"), tg.Name)
	}

	// No DSN or password in the fleet's history.
	hist := historyJSON(t, ctx, c, id)
	var text strings.Builder
	text.WriteString(hist)
	for _, m := range payloadData.FindAllStringSubmatch(hist, -1) {
		raw, err := base64.StdEncoding.DecodeString(m[1])
		require.NoError(t, err)
		text.Write(raw)
	}
	assert.NotContains(t, text.String(), pw)
	assert.NotContains(t, text.String(), "postgres://")
	assert.Contains(t, text.String(), "fleet/wave/1", "the scan reads decoded payloads")
}

func fkNames(p plan.Plan) []string {
	var n []string
	for _, fk := range p.ForeignKeys {
		n = append(n, fk.Name)
	}
	return n
}
