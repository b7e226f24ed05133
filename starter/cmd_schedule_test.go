package main

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// schedule-health against a real dev server: created once, updated (not
// duplicated) the second time, and a triggered run executes FKHealthCheck
// over the configured environments.
func TestScheduleHealthCreatesUpdatesAndRuns(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const tq = "schedule-test"

	var out, errb bytes.Buffer
	code := run(ctx, []string{"schedule-health", "--env", "production", "--task-queue", tq}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, out.String(), "schedule "+healthScheduleID+" created")
	assert.Contains(t, out.String(), "/schedules/"+healthScheduleID)

	out.Reset()
	code = run(ctx, []string{"schedule-health", "--env", "production,staging", "--task-queue", tq, "--schema", "public"}, &out, &errb)
	require.Equal(t, 0, code, errb.String())
	assert.Contains(t, out.String(), "updated")

	c := srv.Client()
	h := c.ScheduleClient().GetHandle(ctx, healthScheduleID)
	desc, err := h.Describe(ctx)
	require.NoError(t, err)
	require.NotNil(t, desc.Schedule.Spec)
	// The server stores cron specs as structured calendars; the monthly
	// shape is day-of-month 1 at 03:00.
	require.Len(t, desc.Schedule.Spec.Calendars, 1)
	cal := desc.Schedule.Spec.Calendars[0]
	assert.Equal(t, []client.ScheduleRange{{Start: 1, End: 1, Step: 1}}, cal.DayOfMonth)
	assert.Equal(t, []client.ScheduleRange{{Start: 3, End: 3, Step: 1}}, cal.Hour)
	act, ok := desc.Schedule.Action.(*client.ScheduleWorkflowAction)
	require.True(t, ok)
	assert.Equal(t, watch.HealthCheckWorkflowName, act.Workflow)
	require.Len(t, act.Args, 1)
	var in watch.HealthCheckInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(act.Args[0].(*commonpb.Payload), &in))
	assert.Equal(t, []string{"production", "staging"}, in.Environments)
	assert.Equal(t, []string{"public"}, in.Schemas)

	list, err := c.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	require.NoError(t, err)
	n := 0
	for list.HasNext() {
		e, err := list.Next()
		require.NoError(t, err)
		if e.ID == healthScheduleID {
			n++
		}
	}
	assert.LessOrEqual(t, n, 1, "running the command twice keeps one schedule")

	// A worker with the health-check workflow and stand-in activities.
	var mu sync.Mutex
	var audited []string
	w := worker.New(c, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(watch.HealthCheckWorkflow, workflow.RegisterOptions{Name: watch.HealthCheckWorkflowName})
	w.RegisterActivityWithOptions(func(_ context.Context, in watch.HealthEnvInput) (watch.HealthReport, error) {
		mu.Lock()
		defer mu.Unlock()
		audited = append(audited, in.Environment)
		return watch.HealthReport{Environment: in.Environment, ForeignKeys: 3, Validated: 3, Healthy: true}, nil
	}, activity.RegisterOptions{Name: watch.ActHealthCheck})
	w.RegisterActivityWithOptions(func(context.Context, notify.Event) (notify.Receipt, error) { return notify.Receipt{}, nil },
		activity.RegisterOptions{Name: steps.ActNotify})
	require.NoError(t, w.Start())
	defer w.Stop()

	require.NoError(t, h.Trigger(ctx, client.ScheduleTriggerOptions{}))
	require.Eventually(t, func() bool {
		d, err := h.Describe(ctx)
		if err != nil || len(d.Info.RecentActions) == 0 {
			return false
		}
		run := d.Info.RecentActions[0].StartWorkflowResult
		var res watch.HealthCheckResult
		if err := c.GetWorkflow(ctx, run.WorkflowID, run.FirstExecutionRunID).Get(ctx, &res); err != nil {
			return false
		}
		return res.Healthy && len(res.Reports) == 2
	}, 60*time.Second, 500*time.Millisecond)
	mu.Lock()
	assert.Equal(t, []string{"production", "staging"}, audited)
	mu.Unlock()
}

func TestScheduleHealthRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"schedule-health"},
		{"schedule-health", "--env", "production", "--cron", "monthly"},
		{"schedule-health", "--env", "production", "--timezone", "Mars/Olympus"},
		{"schedule-health", "--env", "production", "--statement-timeout", "soon"},
	} {
		var out, errb bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), args, &out, &errb), "%v", args)
		assert.NotEmpty(t, errb.String())
	}
}
