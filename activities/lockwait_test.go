package activities

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

var slowScanFK = plan.ForeignKey{Name: "fk_slow_child_parent", Table: plan.TableName{Schema: "public", Name: "slow_child"}, Columns: []string{"parent_id"},
	RefTable: plan.TableName{Schema: "public", Name: "slow_parent"}, RefColumns: []string{"id"}, Priority: plan.PriorityHigh}

// heartbeats records every heartbeat's detail as a migrate.Event.
type heartbeats struct {
	mu     sync.Mutex
	events []migrate.Event
	seen   chan migrate.Event
}

func listen(t *testing.T, db *pgtest.DB) (*heartbeats, func(rollout.ConstraintInput, string) (rollout.ConstraintResult, error)) {
	cfg := cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}})
	env, a := newEnv(t, cfg)
	a.HeartbeatEvery = 50 * time.Millisecond
	hb := &heartbeats{seen: make(chan migrate.Event, 1000)}
	// Every RecordHeartbeat call, before the SDK's throttling.
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&heartbeatTap{rec: func(details ...any) {
		if len(details) == 0 {
			return
		}
		ev, ok := details[0].(migrate.Event)
		if !ok {
			return
		}
		hb.mu.Lock()
		hb.events = append(hb.events, ev)
		hb.mu.Unlock()
		select {
		case hb.seen <- ev:
		default:
		}
	}}}})
	run := func(in rollout.ConstraintInput, act string) (rollout.ConstraintResult, error) {
		v, err := env.ExecuteActivity(act, in)
		var r rollout.ConstraintResult
		if err == nil {
			require.NoError(t, v.Get(&r))
		}
		return r, err
	}
	return hb, run
}

// The activity heartbeats while VALIDATE's scan runs (the heartbeat does
// not wait for the statement), and the heartbeat names what a step waits
// for before it queues: pid, application_name and transaction age.
func TestValidateHeartbeatsThroughTheScanAndNamesItsBlocker(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, pgtest.SlowScanSchema)
	ctx := context.Background()
	hb, run := listen(t, db)
	in := rollout.ConstraintInput{Environment: "staging", RolloutID: "r1", RunID: "run-1", FK: slowScanFK}
	_, err := run(in, rollout.ActApplyConstraint)
	require.NoError(t, err)

	// A long transaction holds SHARE UPDATE EXCLUSIVE (what VALIDATE takes).
	cfg, err := pgx.ParseConfig(db.DSN)
	require.NoError(t, err)
	cfg.RuntimeParams["application_name"] = "test-blocker"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE slow_child IN SHARE UPDATE EXCLUSIVE MODE")
	require.NoError(t, err)
	var blockerPID int
	require.NoError(t, conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&blockerPID))
	time.Sleep(50 * time.Millisecond)
	go func() {
		for ev := range hb.seen {
			if ev.Waiting != nil {
				_ = tx.Commit(ctx)
				return
			}
		}
	}()

	r, err := run(in, rollout.ActValidateConstraint)
	require.NoError(t, err)
	assert.Equal(t, migrate.ActionValidated, r.Action)
	assert.Positive(t, r.WaitedMS)
	assert.Contains(t, r.WaitedFor, "test-blocker")

	hb.mu.Lock()
	defer hb.mu.Unlock()
	var waiting *migrate.Event
	during := 0
	for i, ev := range hb.events {
		if ev.Step != "validate" {
			continue
		}
		if ev.Waiting != nil && waiting == nil {
			waiting = &hb.events[i]
		}
		// After the wait, the detail stays "attempt 1 running" until the
		// statement ends: these heartbeats were sent during the scan.
		if waiting != nil && ev.Waiting == nil && strings.HasPrefix(ev.Message, "attempt 1 running") {
			during++
		}
	}
	require.NotNil(t, waiting, "a heartbeat named the blocker")
	require.NotEmpty(t, waiting.Waiting.Blockers)
	assert.Equal(t, blockerPID, waiting.Waiting.Blockers[0].PID)
	assert.Equal(t, "test-blocker", waiting.Waiting.Blockers[0].ApplicationName)
	assert.Positive(t, waiting.Waiting.Blockers[0].XactAge)
	assert.GreaterOrEqual(t, during, 3, "heartbeats during the multi-second scan")
}

// heartbeatTap sees every heartbeat an activity records.
type heartbeatTap struct {
	interceptor.WorkerInterceptorBase
	rec func(details ...any)
}

func (w *heartbeatTap) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &heartbeatTapIn{rec: w.rec}
	i.Next = next
	return i
}

type heartbeatTapIn struct {
	interceptor.ActivityInboundInterceptorBase
	rec func(details ...any)
}

func (i *heartbeatTapIn) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	o := &heartbeatTapOut{rec: i.rec}
	o.Next = outbound
	return i.Next.Init(o)
}

type heartbeatTapOut struct {
	interceptor.ActivityOutboundInterceptorBase
	rec func(details ...any)
}

func (o *heartbeatTapOut) RecordHeartbeat(ctx context.Context, details ...any) {
	o.rec(details...)
	o.Next.RecordHeartbeat(ctx, details...)
}
