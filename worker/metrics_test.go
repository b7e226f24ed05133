package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// metricsProbe emits fkrollout's own metrics the way the rollout workflow
// does (workflow.GetMetricsHandler, the names of workflows/metrics.go) and
// runs one activity, so the SDK reports workflow and activity metrics too.
func metricsProbe(ctx workflow.Context) error {
	h := workflow.GetMetricsHandler(ctx)
	h.WithTags(map[string]string{"kind": "promotion", "environment": "production"}).Counter(rollout.MetricGatesOpened).Inc(1)
	h.WithTags(map[string]string{"kind": "promotion"}).Timer(rollout.MetricGateWait).Record(3 * time.Hour)
	h.WithTags(map[string]string{"state": "rolled-back"}).Counter(rollout.MetricRolloutsFinished).Inc(1)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteActivity(ctx, "metricsProbeActivity").Get(ctx, nil)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestMetricsEndpointSpeaksTemporalsNames: a worker and client reporting
// through the worker's metrics handler, against a real dev server, expose
// the SDK's metrics under the names Temporal's dashboards and documented
// queries use (counters _total, timers _seconds histograms, no prefix), and
// fkrollout's own as fkrollout_*; closing the server stops the listener.
func TestMetricsEndpointSpeaksTemporalsNames(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	m, err := serveMetrics("127.0.0.1:0", discardLogger())
	require.NoError(t, err)
	c, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), MetricsHandler: m.Handler, Logger: nopLog{}})
	require.NoError(t, err)
	defer c.Close()

	tq := "metrics-" + randHex(4)
	w := worker.New(c, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(metricsProbe, workflow.RegisterOptions{Name: "metricsProbe"})
	w.RegisterActivityWithOptions(func(context.Context) error { return nil }, activity.RegisterOptions{Name: "metricsProbeActivity"})
	require.NoError(t, w.Start())
	defer w.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "metricsProbe")
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))

	// Label order is Prometheus' (sorted), with the SDK's tags among ours.
	want := []string{
		// The SDK's, as Temporal's Grafana dashboards query them.
		`(?m)^# TYPE temporal_workflow_task_schedule_to_start_latency_seconds histogram$`,
		`temporal_workflow_task_schedule_to_start_latency_seconds_bucket\{[^}]*le="0.001"\}`,
		`temporal_activity_schedule_to_start_latency_seconds_bucket\{`,
		`temporal_activity_execution_latency_seconds_bucket\{`,
		`temporal_request_total\{`,
		`temporal_workflow_completed_total\{[^}]*workflow_type="metricsProbe"`,
		`temporal_worker_task_slots_available\{`,
		// fkrollout's own, under fkrollout_.
		`fkrollout_gates_opened_total\{[^}]*environment="production",kind="promotion"[^}]*\} 1\n`,
		`fkrollout_rollouts_finished_total\{[^}]*state="rolled_back"[^}]*\} 1\n`,
		`(?m)^# TYPE fkrollout_gate_wait_seconds histogram$`,
		// Three hours: in the 4 h bucket, not in the 2 h one; buckets reach a week.
		`fkrollout_gate_wait_seconds_bucket\{[^}]*kind="promotion"[^}]*le="7200"\} 0\n`,
		`fkrollout_gate_wait_seconds_bucket\{[^}]*kind="promotion"[^}]*le="14400"\} 1\n`,
		`fkrollout_gate_wait_seconds_bucket\{[^}]*kind="promotion"[^}]*le="604800"\} 1\n`,
		`fkrollout_slack_rejected_requests_total\{reason="bad_signature"\} 0`,
	}
	url := "http://" + m.Addr + "/metrics"
	var body string
	assert.Eventually(t, func() bool {
		body = scrape(t, url)
		for _, re := range want {
			if !regexp.MustCompile(re).MatchString(body) {
				return false
			}
		}
		return true
	}, 15*time.Second, 200*time.Millisecond, "the scope reports every second")
	for _, re := range want {
		assert.Regexp(t, re, body)
	}
	assert.NotContains(t, body, "fkrollout_temporal_", "the SDK's metrics keep their own names")
	assert.Empty(t, regexp.MustCompile(`(?m)^# TYPE \S+ summary$`).FindAllString(body, -1), "timers are histograms, which aggregate across workers")

	require.NoError(t, m.Close(time.Second))
	_, err = http.Get(url)
	assert.Error(t, err, "the listener is closed")
}

func TestOwnMetricNames(t *testing.T) {
	for in, want := range map[string]string{
		"gates_opened":                   "fkrollout_gates_opened",
		"fkrollout_gates_opened":         "fkrollout_gates_opened",
		"temporal_request":               "temporal_request",
		"temporal_activity_poll_no_task": "temporal_activity_poll_no_task",
	} {
		assert.Equal(t, want, ownName(in), in)
	}
}

type nopLog struct{}

func (nopLog) Debug(string, ...any) {}
func (nopLog) Info(string, ...any)  {}
func (nopLog) Warn(string, ...any)  {}
func (nopLog) Error(string, ...any) {}
