package slackbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// queryWorkflowMetadata is the SDK's built-in query returning, among other
// things, the text the workflow last set with workflow.SetCurrentDetails.
const queryWorkflowMetadata = "__temporal_workflow_metadata"

// TemporalDecider is the Decider the worker wires in: a decision is the
// rollout workflow's gate Update, sent with the click's stable update ID so
// Temporal itself deduplicates double clicks and Slack retries.
type TemporalDecider struct {
	Client client.Client
	// UpdateName is the gate Update (workflows.UpdateDecide).
	UpdateName string
	// Prepare turns a decision into the Update's argument and the run it is
	// for. The worker signs the decision there (workflows.DecisionInput with
	// a proof over the claim, which names the run), keeping this package
	// free of the workflow's types. nil sends Decision itself, which has
	// DecisionInput's JSON shape without a proof, to the current run.
	Prepare func(ctx context.Context, rolloutID string, d Decision) (PreparedUpdate, error)
	// Summarize renders "/fkrollout status" as mrkdwn (user text escaped);
	// nil uses the workflow's current details (workflow.SetCurrentDetails),
	// which the workflow keeps as a short markdown status.
	Summarize func(ctx context.Context, c client.Client, rolloutID string) (string, error)
}

// PreparedUpdate is what Prepare returns: the Update's argument and the run
// it was prepared (signed) for; the Update is sent to that run only, so a
// proof for one run never lands on another.
type PreparedUpdate struct {
	Arg   any
	RunID string
}

var _ Decider = (*TemporalDecider)(nil)

// Decide sends the Update and waits for its outcome. A validator rejection
// (policy, four-eyes, closed gate, bad proof) and a rollout that does not
// exist or has ended come back as *RefusedError; anything else (server
// unreachable, timeout, a failing Prepare) as a plain error.
func (d *TemporalDecider) Decide(ctx context.Context, rolloutID string, dec Decision) (Outcome, error) {
	if dec.UpdateID == "" {
		return Outcome{}, errors.New("decide: decision has no update id")
	}
	up := PreparedUpdate{Arg: dec}
	if d.Prepare != nil {
		var err error
		if up, err = d.Prepare(ctx, rolloutID, dec); err != nil {
			return Outcome{}, classify(rolloutID, err)
		}
	}
	h, err := d.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		UpdateID:     dec.UpdateID,
		WorkflowID:   rolloutID,
		RunID:        up.RunID,
		UpdateName:   d.UpdateName,
		Args:         []any{up.Arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	// The gate Update returns a view of the gate (workflows.GateView); only
	// the fields Slack needs are read.
	var view struct {
		Status  string `json:"status"`
		Waiting int    `json:"waiting"`
		Message string `json:"message"`
	}
	var raw json.RawMessage
	if err == nil {
		err = h.Get(ctx, &raw)
	}
	if err := classify(rolloutID, err); err != nil {
		return Outcome{}, err
	}
	// Not a gate view (another result shape): treat the accepted decision as closing.
	_ = json.Unmarshal(raw, &view)
	return Outcome{Closed: view.Waiting == 0 && view.Status != "open", Waiting: view.Waiting, Message: view.Message}, nil
}

// Status answers the slash command.
func (d *TemporalDecider) Status(ctx context.Context, rolloutID string) (string, error) {
	if d.Summarize != nil {
		return d.Summarize(ctx, d.Client, rolloutID)
	}
	v, err := d.Client.QueryWorkflow(ctx, rolloutID, "", queryWorkflowMetadata)
	if err != nil {
		if _, ok := errors.AsType[*serviceerror.NotFound](err); ok {
			return "", fmt.Errorf("no rollout %q", rolloutID)
		}
		return "", fmt.Errorf("status of %s: %w", rolloutID, err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		return "", fmt.Errorf("status of %s: decode metadata: %w", rolloutID, err)
	}
	if s := strings.TrimSpace(md.GetCurrentDetails()); s != "" {
		return esc(s), nil // markdown for the UI, with plan names and reasons in it
	}
	return fmt.Sprintf("Rollout `%s` is running (no details yet).", esc(rolloutID)), nil
}

func classify(rolloutID string, err error) error {
	if err == nil {
		return nil
	}
	if appErr, ok := errors.AsType[*temporal.ApplicationError](err); ok {
		return Refused(appErr.Message())
	}
	if _, ok := errors.AsType[*serviceerror.NotFound](err); ok {
		return Refused(fmt.Sprintf("no running rollout %q", rolloutID))
	}
	if strings.Contains(err.Error(), "workflow execution already completed") {
		return Refused(fmt.Sprintf("rollout %q has already ended", rolloutID))
	}
	return fmt.Errorf("decide on %s: %w", rolloutID, err)
}
