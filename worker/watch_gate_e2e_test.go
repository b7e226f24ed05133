package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestE2EMonitorKeepsWatchingWhileGateIsOpen: the worker as main.go builds
// it, a real dev server and database. One of two health checks fails: the
// investigate row opens a gate nobody answers. The watch goes on; when
// both fail, the rollback row fires, closes the gate with the reason, and
// the rollout drops its constraints.
func TestE2EMonitorKeepsWatchingWhileGateIsOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	production := pgtest.New(t)
	seedDemo(t, production, nil)
	fksBefore := production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")

	var failing atomic.Int32 // how many of the two checks fail
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := failing.Load()
		if (r.URL.Path == "/health" && n >= 1) || (r.URL.Path == "/orders" && n >= 2) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()

	cfg := testConfig(t, map[string]string{"production": withPassword(production.DSN, "pw-"+randHex(8))}, nil)
	cfg.Monitor = monitor.Config{Sources: map[string]monitor.SourceConfig{
		"app": {Kind: monitor.KindHTTP, Environment: "production", Checks: []monitor.HTTPCheck{
			{Name: "health", URL: app.URL + "/health", ExpectStatus: 200}, {Name: "orders", URL: app.URL + "/orders", ExpectStatus: 200}}},
	}}
	require.NoError(t, cfg.Validate())
	tq := startRolloutWorker(t, c, "e2e-watch-gate", cfg, nil, discardLogger(), withMonitorActivities)

	in := rollout.Input{
		Plan:         sqlassets.Migration,
		Requester:    rita,
		Skip:         skipAllBut("monitor"),
		Environments: []rollout.EnvironmentInput{{Name: "production"}},
		Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob}}},
		Monitor: rollout.MonitorInput{Enabled: true, Duration: "10m", Interval: "1s", BaselinePeriod: "1s", Sources: []string{"app"},
			Rules: []monitor.Rule{
				{Name: "app-degraded", Metric: monitor.MetricSmokeFailures, Op: ">", Threshold: 0, Action: monitor.ActionInvestigate, Persist: 1},
				{Name: "app-down", Metric: monitor.MetricSmokeFailures, Op: ">", Threshold: 1, Action: monitor.ActionRollback, Persist: 2},
			}},
	}
	id := "e2e-watch-gate-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)

	require.Eventually(t, func() bool {
		st := queryStatusT(t, ctx, c, id)
		return st.Monitor != nil && st.Monitor.Status == rollout.MonitorWatching && len(st.Monitor.Rules) == 2
	}, 2*time.Minute, 200*time.Millisecond, "the watch reports its rules")
	failing.Store(1)
	var gateID string
	require.Eventually(t, func() bool {
		st := queryStatusT(t, ctx, c, id)
		for _, g := range st.OpenGates {
			if g.Kind == notify.GateInvestigate {
				gateID = g.ID
			}
		}
		return gateID != ""
	}, time.Minute, 100*time.Millisecond, "the investigate gate opens")
	failing.Store(2) // nobody answers; the application goes down

	// A rolled-back rollout closes failed (RolledBack) and carries its status.
	st, ok := rollout.OutcomeStatus(run.Get(ctx, nil))
	require.True(t, ok, "the rollout closes RolledBack with its status")
	child := id + "/monitor-" + itoa(len(st.Monitor.Rounds))
	recordHistory(t, ctx, c, id, "history-watch-gate-rollback.json")
	recordHistory(t, ctx, c, child, "history-watch-gate-child.json")

	assert.Equal(t, rollout.StateRolledBack, st.State, st.Summary())
	assert.Equal(t, rollout.MonitorRollback, st.Monitor.Status)
	assert.Equal(t, "app-down", st.Monitor.Rule)
	assert.Contains(t, st.Monitor.Reason, "while gate "+gateID+" was open")
	var gate approval.Gate
	for _, g := range st.Gates {
		if g.ID == gateID {
			gate = g
		}
	}
	assert.Equal(t, approval.GateDecided, gate.Status)
	require.NotNil(t, gate.Decision)
	assert.Equal(t, rollout.ActorMonitor, gate.Decision.Actor)
	assert.Equal(t, approval.ChoiceRollback, gate.Decision.Action)
	assert.Contains(t, gate.Decision.Reason, "rollback row app-down fired while the gate was open")
	require.NotNil(t, gate.Deadline, "the gate had the monitor's default timeout")
	assert.Equal(t, gate.OpenedAt.Add(rollout.DefaultInvestigateTimeout), *gate.Deadline)
	assert.Equal(t, fksBefore, production.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), "exactly the rollout's constraints dropped")
	assert.True(t, strings.Contains(st.Report(), "## Production Monitor Rules"))
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
