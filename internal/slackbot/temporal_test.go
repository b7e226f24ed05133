package slackbot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// gateWorkflow is a stand-in with the shape of the rollout's gate: an Update
// with a validator (unknown gate, four-eyes, already decided) and current
// details for the status. It lets TemporalDecider be tested against a real
// dev server without the rollout workflow.
func gateWorkflow(ctx workflow.Context, requester string) error {
	decidedBy := ""
	executions := 0
	workflow.SetCurrentDetails(ctx, "**staging** · waiting for the promotion gate")
	if err := workflow.SetQueryHandler(ctx, "executions", func() (int, error) { return executions, nil }); err != nil {
		return err
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, "decide",
		func(ctx workflow.Context, d Decision) (map[string]any, error) {
			executions++
			decidedBy = d.Actor
			workflow.SetCurrentDetails(ctx, "**staging** · promotion approved by "+d.Actor)
			return map[string]any{"gate_id": d.GateID, "status": "decided", "message": "gate decided"}, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, d Decision) error {
			switch {
			case d.GateID != "promotion":
				return errors.New("unknown gate " + d.GateID)
			case d.Actor == requester:
				return errors.New("four-eyes: " + d.Actor + " requested this rollout")
			case decidedBy != "":
				return errors.New("gate promotion already decided by " + decidedBy)
			}
			return nil
		}})
	if err != nil {
		return err
	}
	workflow.GetSignalChannel(ctx, "finish").Receive(ctx, nil)
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

func TestTemporalDeciderOnDevServer(t *testing.T) {
	cli, err := filepath.Abs("../../bin/temporal")
	require.NoError(t, err)
	_, err = os.Stat(cli)
	require.NoError(t, err, "the pinned Temporal CLI is built by `make temporal`")

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{ExistingPath: cli, LogLevel: "error",
		ClientOptions: &client.Options{Namespace: "default"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop() })
	c := srv.Client()

	const queue = "slackbot-test"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(gateWorkflow, workflow.RegisterOptions{Name: "SlackbotGateTest"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "fkr-slack-e2e", TaskQueue: queue}, "SlackbotGateTest", "carol@example.com")
	require.NoError(t, err)

	d := &TemporalDecider{Client: c, UpdateName: "decide"}
	decision := func(actor, user, gate string) Decision {
		return Decision{DecisionInput: approval.DecisionInput{GateID: gate, Choice: approval.ChoiceApprove, Actor: actor, SlackUser: user, Via: "slack"},
			UpdateID: UpdateID(gate, user, approval.ChoiceApprove)}
	}

	status, err := d.Status(ctx, run.GetID())
	require.NoError(t, err)
	assert.Equal(t, "**staging** · waiting for the promotion gate", status)

	var refused *RefusedError
	_, err = d.Decide(ctx, run.GetID(), decision("carol@example.com", "U0CAROL", "promotion"))
	require.ErrorAs(t, err, &refused, "the requester's own click")
	assert.Contains(t, refused.Reason, "four-eyes")

	_, err = d.Decide(ctx, run.GetID(), decision("bob@example.com", "U0BOB", "nope"))
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, refused.Reason, "unknown gate nope")

	// Bob's click, a double click, and a Slack retry: one decision.
	for i := 0; i < 3; i++ {
		out, err := d.Decide(ctx, run.GetID(), decision("bob@example.com", "U0BOB", "promotion"))
		require.NoError(t, err, "attempt %d", i)
		assert.Equal(t, Outcome{Closed: true, Message: "gate decided"}, out)
	}
	q, err := c.QueryWorkflow(ctx, run.GetID(), "", "executions")
	require.NoError(t, err)
	var executions int
	require.NoError(t, q.Get(&executions))
	assert.Equal(t, 1, executions, "the same update ID decides once")

	_, err = d.Decide(ctx, run.GetID(), decision("dave@example.com", "U0DAVE", "promotion"))
	require.ErrorAs(t, err, &refused, "another approver after the decision")
	assert.Contains(t, refused.Reason, "already decided by bob@example.com")

	status, err = d.Status(ctx, run.GetID())
	require.NoError(t, err)
	assert.Contains(t, status, "promotion approved by bob@example.com")

	_, err = d.Decide(ctx, "fkr-does-not-exist", decision("bob@example.com", "U0BOB", "promotion"))
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, refused.Reason, "fkr-does-not-exist")
	_, err = d.Status(ctx, "fkr-does-not-exist")
	assert.ErrorContains(t, err, `no rollout "fkr-does-not-exist"`)

	require.NoError(t, c.SignalWorkflow(ctx, run.GetID(), "", "finish", nil))
	require.NoError(t, run.Get(ctx, nil))
	_, err = d.Decide(ctx, run.GetID(), decision("erin@example.com", "U0ERIN", "promotion"))
	require.ErrorAs(t, err, &refused, "a rollout that has ended")

	t.Run("Prepare makes the Update's argument and pins the run", func(t *testing.T) {
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "fkr-slack-prepare", TaskQueue: queue}, "SlackbotGateTest", "carol@example.com")
		require.NoError(t, err)
		var prepared []string
		d := &TemporalDecider{Client: c, UpdateName: "decide", Prepare: func(ctx context.Context, rolloutID string, dec Decision) (PreparedUpdate, error) {
			desc, err := c.DescribeWorkflowExecution(ctx, rolloutID, "")
			if err != nil {
				return PreparedUpdate{}, err
			}
			prepared = append(prepared, desc.WorkflowExecutionInfo.Execution.RunId)
			dec.Actor = "signed:" + dec.Actor // what the worker sends, not what the click said
			return PreparedUpdate{Arg: dec, RunID: desc.WorkflowExecutionInfo.Execution.RunId}, nil
		}}
		wrong := &TemporalDecider{Client: c, UpdateName: "decide", Prepare: func(context.Context, string, Decision) (PreparedUpdate, error) {
			return PreparedUpdate{Arg: decision("bob@example.com", "U0BOB", "promotion"), RunID: "00000000-0000-0000-0000-000000000000"}, nil
		}}
		var refused *RefusedError
		_, err = wrong.Decide(ctx, run.GetID(), decision("bob@example.com", "U0BOB", "promotion"))
		require.ErrorAs(t, err, &refused, "a proof for another run never lands on this one")

		_, err = d.Decide(ctx, "fkr-no-such-rollout", decision("bob@example.com", "U0BOB", "promotion"))
		require.ErrorAs(t, err, &refused, "Prepare's not-found is a refusal")
		assert.Contains(t, refused.Reason, "fkr-no-such-rollout")

		out, err := d.Decide(ctx, run.GetID(), decision("bob@example.com", "U0BOB", "promotion"))
		require.NoError(t, err)
		assert.True(t, out.Closed)
		assert.Equal(t, []string{run.GetRunID()}, prepared)
		status, err := d.Status(ctx, run.GetID())
		require.NoError(t, err)
		assert.Contains(t, status, "approved by signed:bob@example.com", "the prepared argument was sent")
		require.NoError(t, c.TerminateWorkflow(ctx, run.GetID(), "", "test done"))
	})

	t.Run("signed Slack clicks through the handler", func(t *testing.T) {
		// The whole Slack path on real wires: gate message posted to the local
		// Slack API, signed HTTP interactions, Updates on the dev server,
		// message updated in place, clicker told via response_url.
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "fkr-slack-e2e-2", TaskQueue: queue}, "SlackbotGateTest", "alice@example.com")
		require.NoError(t, err)
		rec := newRecorder(t)
		bot, err := New(testConfig(rec), &TemporalDecider{Client: c, UpdateName: "decide"}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = bot.Interactions.Shutdown(context.Background()) })
		h := bot.Handler()

		ev := promotionEvent(MessageRef{})
		ev.RolloutID = run.GetID()
		ev.Gate.ID = "promotion"
		msg, err := bot.Notifier.Post(ctx, ev)
		require.NoError(t, err)
		raw := []byte(rec.byMethod("chat.postMessage")[0].Form.Get("blocks"))
		approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]

		clickAs := func(user string) call {
			w := serve(t, h, signedRequest(testSecret, time.Now(), interactionBody(t, click(user, msg, raw, approve, rec.responseURL(user)))))
			require.Equal(t, 200, w.Code)
			return waitResponse(t, rec)
		}
		// Alice requested the rollout (U0ALICE maps to alice@example.com).
		assert.Contains(t, clickAs("U0ALICE").JSON["text"], "four-eyes")
		bot.Interactions.Wait()
		assert.Empty(t, rec.byMethod("chat.update"))

		assert.Contains(t, clickAs("U0BOB").JSON["text"], "Recorded")
		bot.Interactions.Wait()
		updates := rec.byMethod("chat.update")
		require.Len(t, updates, 1)
		assert.Empty(t, buttons(blocksOf(t, updates[0])))
		assert.Contains(t, text(t, blocksOf(t, updates[0])), "Approved by <@U0BOB>")

		// A forged click never reaches the server: still only one execution.
		forged := signedRequest("not-the-secret", time.Now(), interactionBody(t, click("U0BOB", msg, raw, approve, rec.responseURL("f"))))
		assert.Equal(t, 401, serve(t, h, forged).Code)
		q, err := c.QueryWorkflow(ctx, run.GetID(), "", "executions")
		require.NoError(t, err)
		var n int
		require.NoError(t, q.Get(&n))
		assert.Equal(t, 1, n)
		require.NoError(t, c.TerminateWorkflow(ctx, run.GetID(), "", "test done"))
	})
}
