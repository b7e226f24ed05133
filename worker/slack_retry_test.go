package main

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enums "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/activities"
	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/slackbot"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/slacktest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// notifyOnce runs the Notify activity as the workflows do, with a short
// initial interval: a retry that waits seconds waited for Slack's
// Retry-After, not for the policy.
func notifyOnce(ctx workflow.Context, ev notify.Event) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 1, MaximumAttempts: 3}})
	return workflow.ExecuteActivity(ctx, steps.ActNotify, ev).Get(ctx, nil)
}

// TestNotifyRetriesAreTemporals: the Notify activity with the Slack
// notifier, on a real worker and dev server, against the recording Slack
// API. A 429 with Retry-After fails the attempt after one call with
// NextRetryDelay = Retry-After, and Temporal makes the next attempt then:
// one call per attempt, two in all. A refusal (invalid_auth) is one call
// and no retry.
func TestNotifyRetriesAreTemporals(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	rec := slacktest.NewRecorder(t, slacktest.Options{})
	scfg := slackbot.Config{BotToken: "xoxb-test", Channel: "C0ROLLOUT", APIURL: rec.APIURL()}
	n := slackbot.NewNotifier(slackbot.NewClient(scfg), scfg, discardLogger())
	acts, err := activities.New(&config.Config{UIURL: "http://localhost:8233"}, n, discardLogger())
	require.NoError(t, err)
	t.Cleanup(acts.Close)

	tq := "notify-" + randHex(4)
	w := worker.New(c, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(notifyOnce, workflow.RegisterOptions{Name: "notifyOnce"})
	w.RegisterActivityWithOptions(acts.Notify, activity.RegisterOptions{Name: steps.ActNotify})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	ev := notify.Event{RolloutID: "fkr-retry", Kind: notify.KindPhase, Phase: "validate", Environment: "staging", Text: "validating"}

	t.Run("rate limit waits Retry-After", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		before, postsBefore := len(rec.Calls()), len(rec.ByMethod("chat.postMessage"))
		rec.FailNext("chat.postMessage", slacktest.Failure{Status: http.StatusTooManyRequests, RetryAfter: "3"})
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "notifyOnce", ev)
		require.NoError(t, err)

		// Between the attempts: one call made, the failure says when to retry.
		var pending *workflowpb.PendingActivityInfo
		require.Eventually(t, func() bool {
			d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
			if err != nil || len(d.PendingActivities) == 0 || d.PendingActivities[0].LastFailure == nil {
				return false
			}
			pending = d.PendingActivities[0]
			return true
		}, 5*time.Second, 50*time.Millisecond)
		info := pending.LastFailure.GetApplicationFailureInfo()
		assert.Equal(t, int32(2), pending.Attempt, "the second attempt is scheduled")
		assert.Equal(t, 3*time.Second, info.GetNextRetryDelay().AsDuration(), "NextRetryDelay is Slack's Retry-After")
		assert.Equal(t, slackbot.ErrTypeRateLimited, info.GetType())
		assert.Len(t, rec.Calls()[before:], 1, "one call in the first attempt")

		require.NoError(t, run.Get(ctx, nil))
		// The retry first looks for the first attempt's post (idempotent
		// posting), then posts: one post per attempt.
		calls := rec.ByMethod("chat.postMessage")[postsBefore:]
		require.Len(t, calls, 2, "one post per attempt")
		assert.GreaterOrEqual(t, calls[1].At.Sub(calls[0].At), 2900*time.Millisecond, "the retry came after Retry-After, not the 100 ms interval")
	})

	t.Run("refusal is not retried", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		before := len(rec.Calls())
		rec.FailNext("chat.postMessage", slacktest.Failure{Error: "invalid_auth"})
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "notifyOnce", ev)
		require.NoError(t, err)
		err = run.Get(ctx, nil)
		require.Error(t, err)
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		assert.Equal(t, slackbot.ErrTypeRefused, ae.Type())
		assert.Contains(t, ae.Error(), "invalid_auth")
		assert.Len(t, rec.Calls()[before:], 1, "a refusal is final: one call")
		d, err := c.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		require.NoError(t, err)
		assert.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_FAILED, d.WorkflowExecutionInfo.Status)
	})
}
