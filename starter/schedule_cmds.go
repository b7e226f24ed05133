package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/watch"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Defaults of the monthly FK health check (the seeds' Post-Deployment
// "Month 2+: Run FK health check monthly").
const (
	healthScheduleID   = "fkrollout-fk-health-check"
	healthScheduleCron = "0 3 1 * *" // 03:00 on the first of every month
)

// scheduleCommands manage Temporal Schedules such as the monthly FK health
// check.
func scheduleCommands() []command {
	return []command{
		{name: "schedule-health", summary: "create or update the monthly FK health check schedule (--env production [--env staging])", run: cmdScheduleHealth},
	}
}

// scheduleMultiFlag collects a repeatable flag; commas also separate values.
type scheduleMultiFlag []string

func (m *scheduleMultiFlag) String() string { return strings.Join(*m, ",") }
func (m *scheduleMultiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}

type healthScheduleOpts struct {
	id, cron, timezone, taskQueue, timeout, uiURL string
	envs, schemas                                 scheduleMultiFlag
	paused                                        bool
}

func cmdScheduleHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o healthScheduleOpts
	fs := flag.NewFlagSet("schedule-health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.envs, "env", "environment to audit (repeatable; worker environment names)")
	fs.Var(&o.schemas, "schema", "schema to audit (repeatable; default every user schema)")
	fs.StringVar(&o.id, "id", healthScheduleID, "schedule id")
	fs.StringVar(&o.cron, "cron", healthScheduleCron, "cron spec (minute hour day-of-month month day-of-week)")
	fs.StringVar(&o.timezone, "timezone", "UTC", "IANA time zone of the cron spec")
	fs.StringVar(&o.taskQueue, "task-queue", envOr("FKROLLOUT_TASK_QUEUE", rollout.DefaultTaskQueue), "worker task queue")
	fs.StringVar(&o.timeout, "statement-timeout", "30m", "statement timeout of each orphan count")
	fs.StringVar(&o.uiURL, "ui", envOr("FKROLLOUT_UI_URL", "http://localhost:8233"), "Temporal UI base URL for links")
	fs.BoolVar(&o.paused, "paused", false, "create the schedule paused")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	if len(o.envs) == 0 {
		return usageError{"at least one --env is required (the environments whose foreign keys to audit)"}
	}
	if d, err := time.ParseDuration(o.timeout); err != nil || d < 0 {
		return usageError{fmt.Sprintf("--statement-timeout %q is not a duration", o.timeout)}
	}
	if _, err := time.LoadLocation(o.timezone); err != nil {
		return usageError{fmt.Sprintf("--timezone %q: %v", o.timezone, err)}
	}
	if n := len(strings.Fields(o.cron)); n != 5 {
		return usageError{fmt.Sprintf("--cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", o.cron, n)}
	}

	c, ns, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	created, err := upsertHealthSchedule(ctx, c.ScheduleClient(), o)
	if err != nil {
		return err
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Fprintf(stdout, "schedule %s %s: %s %q (%s) audits %s\n", o.id, verb, watch.HealthCheckWorkflowName, o.cron, o.timezone, strings.Join(o.envs, ", "))
	fmt.Fprintf(stdout, "%s/namespaces/%s/schedules/%s\n", strings.TrimRight(o.uiURL, "/"), ns, o.id)
	return nil
}

// upsertHealthSchedule creates the schedule, or updates spec and action
// when it exists, so running the command again is safe.
func upsertHealthSchedule(ctx context.Context, sc client.ScheduleClient, o healthScheduleOpts) (bool, error) {
	spec := client.ScheduleSpec{CronExpressions: []string{o.cron}, TimeZoneName: o.timezone}
	action := &client.ScheduleWorkflowAction{
		ID:        o.id + "-run",
		Workflow:  watch.HealthCheckWorkflowName,
		TaskQueue: o.taskQueue,
		Args: []any{watch.HealthCheckInput{Environments: o.envs, Schemas: o.schemas,
			StatementTimeout: o.timeout}},
		WorkflowExecutionTimeout: 24 * time.Hour,
	}
	note := "fkrollout: monthly FK health check (orphans and NOT VALID constraints)"
	h := sc.GetHandle(ctx, o.id)
	_, err := h.Describe(ctx)
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		_, err := sc.Create(ctx, client.ScheduleOptions{ID: o.id, Spec: spec, Action: action, Note: note, Paused: o.paused,
			Overlap: enums.SCHEDULE_OVERLAP_POLICY_SKIP, CatchupWindow: 24 * time.Hour})
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
			return false, fmt.Errorf("create schedule %s: %w", o.id, err)
		}
		// Created concurrently: fall through to update.
	case err != nil:
		return false, fmt.Errorf("describe schedule %s: %w", o.id, err)
	}
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		s.Spec = &spec
		s.Action = action
		if s.Policy == nil {
			s.Policy = &client.SchedulePolicies{}
		}
		s.Policy.Overlap = enums.SCHEDULE_OVERLAP_POLICY_SKIP
		s.Policy.CatchupWindow = 24 * time.Hour
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil {
		return false, fmt.Errorf("update schedule %s: %w", o.id, err)
	}
	return false, nil
}
