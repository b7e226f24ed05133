package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/watch"

	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// Defaults of the monthly FK health check: after the rollout, the
// constraints are re-checked once a month so drift is caught early.
const (
	healthScheduleID   = "fkrollout-fk-health-check"
	healthScheduleCron = "0 3 1 * *" // 03:00 on the first of every month
)

// scheduleCommands manage Temporal Schedules such as the monthly FK health
// check.
func scheduleCommands() []*cobra.Command {
	return []*cobra.Command{scheduleHealthCmd()}
}

// scheduleMultiFlag collects a repeatable flag; commas also separate values.
type scheduleMultiFlag []string

func (m *scheduleMultiFlag) String() string { return strings.Join(*m, ",") }
func (m *scheduleMultiFlag) Type() string   { return "strings" }
func (m *scheduleMultiFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*m = append(*m, s)
		}
	}
	return nil
}

type healthScheduleOpts struct {
	id, cron, timezone, taskQueue string
	timeout                       time.Duration
	envs, schemas                 scheduleMultiFlag
	paused, json                  bool
}

func scheduleHealthCmd() *cobra.Command {
	var o healthScheduleOpts
	var tf temporalFlags
	cmd := &cobra.Command{
		Use:     "schedule-health --env ENV [--env ENV]",
		Short:   "create or update the monthly FK health check schedule",
		Example: "  fkrollout schedule-health --env production --env staging --cron \"0 3 1 * *\" --timezone Asia/Jakarta",
		Args:    exactArgs(),
	}
	fs := cmd.Flags()
	fs.Var(&o.envs, "env", "environment to audit (repeatable or comma-separated; worker environment names; required)")
	fs.Var(&o.schemas, "schema", "schema to audit (repeatable or comma-separated; default every user schema)")
	fs.StringVar(&o.id, "id", healthScheduleID, "schedule id")
	fs.StringVar(&o.cron, "cron", healthScheduleCron, "cron spec (minute hour day-of-month month day-of-week)")
	fs.StringVar(&o.timezone, "timezone", "UTC", "IANA time zone of the cron spec")
	fs.StringVar(&o.taskQueue, "task-queue", envOr("FKROLLOUT_TASK_QUEUE", rollout.DefaultTaskQueue), "worker task queue (FKROLLOUT_TASK_QUEUE)")
	fs.DurationVar(&o.timeout, "statement-timeout", 30*time.Minute, "statement timeout of each orphan count (0: none)")
	fs.BoolVar(&o.paused, "paused", false, "create the schedule paused")
	fs.BoolVar(&o.json, "json", false, "print the schedule as JSON")
	tf.register(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runScheduleHealth(cmd.Context(), o, tf, cmd.OutOrStdout())
	}
	return cmd
}

func runScheduleHealth(ctx context.Context, o healthScheduleOpts, tf temporalFlags, stdout io.Writer) error {
	if len(o.envs) == 0 {
		return usageError{"at least one --env is required (the environments whose foreign keys to audit)"}
	}
	if o.timeout < 0 {
		return usageError{fmt.Sprintf("--statement-timeout must not be negative, got %s", o.timeout)}
	}
	if _, err := time.LoadLocation(o.timezone); err != nil {
		return usageError{fmt.Sprintf("--timezone %q: %v", o.timezone, err)}
	}
	if n := len(strings.Fields(o.cron)); n != 5 {
		return usageError{fmt.Sprintf("--cron %q: want 5 fields (minute hour day-of-month month day-of-week), got %d", o.cron, n)}
	}

	c, ns, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	created, err := upsertHealthSchedule(ctx, c.ScheduleClient(), o)
	if err != nil {
		return err
	}
	link := fmt.Sprintf("%s/namespaces/%s/schedules/%s", strings.TrimRight(tf.uiURL, "/"), ns, o.id)
	if o.json {
		return writeJSON(stdout, map[string]any{"schedule_id": o.id, "created": created, "workflow": watch.HealthCheckWorkflowName,
			"cron": o.cron, "timezone": o.timezone, "environments": o.envs, "ui": link})
	}
	verb := "updated"
	if created {
		verb = "created"
	}
	fmt.Fprintf(stdout, "schedule %s %s: %s %q (%s) audits %s\n", o.id, verb, watch.HealthCheckWorkflowName, o.cron, o.timezone, strings.Join(o.envs, ", "))
	fmt.Fprintln(stdout, link)
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
			StatementTimeout: durationText(o.timeout)}},
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
