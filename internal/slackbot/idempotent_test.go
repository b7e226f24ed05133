package slackbot

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/slacktest"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// notifyWithRolloutPolicy runs the Notify activity with the options every
// rollout uses (steps.Notify), and returns the receipt.
func notifyWithRolloutPolicy(ctx workflow.Context, ev notify.Event) (notify.Receipt, error) {
	ctx = workflow.WithActivityOptions(ctx, steps.Notify())
	var r notify.Receipt
	err := workflow.ExecuteActivity(ctx, steps.ActNotify, ev).Get(ctx, &r)
	return r, err
}

// The Notify activity outlasts one Slack call: an attempt ends by the
// client's own timeout, never by Temporal's, so the retry runs.
func TestNotifyOutlastsTheSlackClient(t *testing.T) {
	assert.Greater(t, steps.Notify().StartToCloseTimeout, ClientTimeout)
}

// A post Slack carried out but answered too late for the client (the first
// attempt times out) is found by the retry, by the key in its metadata,
// and not posted again: one message, and the receipt names it. Real dev
// server, real worker, the recording Slack Web API.
func TestSlowPostIsNotDuplicatedByTheRetry(t *testing.T) {
	srv := devserver.Start(t, temporal.NewSearchAttributes())
	c := srv.Client()
	rec := slacktest.NewRecorder(t, slacktest.Options{})
	cfg := Config{BotToken: "xoxb-test", Channel: "C0ROLLOUT", APIURL: rec.APIURL()}
	// A short client timeout stands in for the 15 s one: the slow answer
	// comes after it.
	n := NewNotifier(NewClient(cfg, slack.OptionHTTPClient(&http.Client{Timeout: 500 * time.Millisecond})), cfg,
		slog.New(slog.NewTextHandler(io.Discard, nil)))

	tq := "idempotent-" + strings.ReplaceAll(t.Name(), "/", "-")
	w := worker.New(c, tq, worker.Options{})
	w.RegisterWorkflowWithOptions(notifyWithRolloutPolicy, workflow.RegisterOptions{Name: "notifyWithRolloutPolicy"})
	w.RegisterActivityWithOptions(n.Notify, activity.RegisterOptions{Name: steps.ActNotify})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	thread := notify.MessageRef{Channel: "C0ROLLOUT", TS: "1699999999.000001"}
	cases := []struct {
		name   string
		ev     notify.Event
		lookup string
	}{
		{"thread parent, found in the channel", notify.Event{RolloutID: "fkr-slow-1", Kind: notify.KindStarted, Text: "started",
			Start: &notify.StartInfo{PlanSummary: "demo: 1 foreign key", Constraints: 1, Environments: []string{"staging"}, Requester: "rita"}}, "conversations.history"},
		{"reply, found in the thread", notify.Event{RolloutID: "fkr-slow-2", Kind: notify.KindPhase, Phase: "validate", Text: "validating", Thread: thread}, "conversations.replies"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			posts, lookups := len(rec.ByMethod("chat.postMessage")), len(rec.ByMethod(tc.lookup))
			rec.FailNext("chat.postMessage", slacktest.Failure{Delay: 2 * time.Second})
			run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: tq}, "notifyWithRolloutPolicy", tc.ev)
			require.NoError(t, err)
			var r notify.Receipt
			require.NoError(t, run.Get(ctx, &r))

			made := rec.ByMethod("chat.postMessage")[posts:]
			require.Len(t, made, 1, "posted once: the retry found the first attempt's message")
			assert.Equal(t, made[0].TS, r.Ref.TS, "the receipt names the message Slack has")
			assert.Contains(t, made[0].Form.Get("metadata"), metadataEventType)
			assert.Len(t, rec.ByMethod(tc.lookup)[lookups:], 1, "the retry looked before posting")
		})
	}
}
