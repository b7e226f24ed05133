package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// FKRolloutMonitor on a real dev server with the real activities and a
// real database: the baseline is captured, the watcher heartbeats, and
// (1) errors that start after the baseline end the watch with a rollback
// decision naming the rule, time and figures; (2) a quiet window ends
// clean by its timer. History stays bounded either way: a watcher stretch
// per checkpoint, not per check.
func TestMonitorWorkflowOnDevServer(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	db := pgtest.New(t)
	db.Exec(t, monitorShopDDL)
	db.Exec(t, monitorItemsFK.AddSQL(true))
	cfg := monitor.Config{Sources: map[string]monitor.SourceConfig{"prod-db": {Kind: monitor.KindPostgres, Environment: "production"}}}
	m := monitorActivitiesFor(db, cfg)
	const tq = "monitor-e2e"
	w := worker.New(c, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(watch.Workflow, workflow.RegisterOptions{Name: watch.WorkflowName})
	m.Register(w)
	require.NoError(t, w.Start())
	defer w.Stop()
	tables := monitor.PlanTables(plan.Plan{ForeignKeys: []plan.ForeignKey{monitorItemsFK}})

	run := func(t *testing.T, id string, req watch.Request) (watch.Outcome, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		wr, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, watch.WorkflowName, req)
		require.NoError(t, err)
		var out watch.Outcome
		require.NoError(t, wr.Get(ctx, &out))
		it := c.GetWorkflowHistory(ctx, id, wr.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n := 0
		for it.HasNext() {
			_, err := it.Next()
			require.NoError(t, err)
			n++
		}
		return out, n
	}
	base := watch.Request{RolloutID: "r-e2e", Environment: "production", Tables: tables, Interval: "1s",
		Config: watch.Config{Sources: []string{"prod-db"}, BaselinePeriod: "2s", Persist: 2, InconclusiveLimit: 1000}}

	t.Run("errors after the baseline roll back", func(t *testing.T) {
		tr := monitorStartTraffic(t, db)
		go func() {
			time.Sleep(6 * time.Second) // after the 2 s baseline
			tr.bad.Store(300)
		}()
		req := base
		req.Duration = "60s"
		out, events := run(t, "monitor-rollback", req)
		assert.Equal(t, watch.OutcomeRollback, out.Status, out.Reason)
		assert.Equal(t, monitor.RuleErrorRate, out.Rule)
		assert.False(t, out.At.IsZero())
		require.NotEmpty(t, out.NotifyFigures)
		assert.Greater(t, out.NotifyFigures[0].Value, 5.0)
		require.NotNil(t, out.Baseline)
		assert.Contains(t, out.Reason, "error-rate-increase → rollback")
		// One baseline, one timer, and one watcher stretch per checkpoint:
		// the first check, each change of a rule's state, each hour.
		assert.Less(t, events, 60, "history stays bounded")
	})

	t.Run("a quiet window ends clean", func(t *testing.T) {
		monitorStartTraffic(t, db)
		req := base
		req.Duration = "8s"
		out, events := run(t, "monitor-clean", req)
		assert.Equal(t, watch.OutcomeClean, out.Status, out.Reason)
		assert.Less(t, events, 30)
	})
}
