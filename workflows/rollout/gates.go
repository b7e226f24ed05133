package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// openGate registers a new open gate. Gate IDs are deterministic:
// <environment>/<kind>/<sequence>.
func (w *rollout) openGate(ctx workflow.Context, kind notify.GateKind, env, title, summary string, choices []string, detail *notify.Gate) *approval.Gate {
	w.gateSeq++
	g := w.Open(ctx, approval.GateSpec{ID: fmt.Sprintf("%s/%s/%d", env, kind, w.gateSeq), Kind: kind, Environment: env,
		Title: title, Summary: summary, Choices: choices, Rule: w.approval().Rule(kind, env), Detail: detail})
	countMetric(ctx, MetricGatesOpened, map[string]string{"kind": string(kind), "environment": env})
	return g
}

// awaitGate waits for a decision, the gate's timeout (a labelled timer that
// applies the configured default) or a stop request.
func (w *rollout) awaitGate(ctx workflow.Context, g *approval.Gate) (approval.Decision, error) {
	prev := w.st.State
	w.setState(ctx, StateWaitingForGate)
	// The Slack message carries the same block as the CLI status.
	g.Detail.Block = w.gateBlockFor(g)
	g.Message = w.notify(ctx, approval.OpenedEvent(g, w.st.Phase)).Ref

	if err := w.Await(ctx, g, func() bool { return w.stop != nil }); err != nil {
		return approval.Decision{}, err
	}
	if g.Status == approval.GateOpen {
		if w.stop != nil {
			// Histories before this left the gate's buttons live in Slack.
			if workflow.GetVersion(ctx, gateClosedOnStopVersion, workflow.DefaultVersion, 1) == 1 {
				w.closeGate(ctx, g, "rollout is stopping ("+w.stop.kind+" by "+w.stop.in.Actor+")")
				return approval.Decision{}, errStopped
			}
			g.Status = approval.GateCancelled
			w.event(ctx, g.Environment, "gate", fmt.Sprintf("gate %s cancelled: rollout is stopping", g.ID))
			return approval.Decision{}, errStopped
		}
		w.TimeOut(ctx, g, true)
	}
	w.setState(ctx, prev)
	if w.st.State == StateWaitingForGate {
		w.setState(ctx, StateRunning)
	}
	d := *g.Decision
	countMetric(ctx, MetricGateDecisions, map[string]string{"kind": string(g.Kind), "choice": d.Action, "via": cmp.Or(d.Via, "unknown")})
	timeMetric(ctx, MetricGateWait, map[string]string{"kind": string(g.Kind)}, d.Time.Sub(g.OpenedAt))
	w.notify(ctx, approval.DecidedEvent(g, d, w.st.Phase))
	return d, nil
}

// validateDecision is the decide validator: it must not change state.
func (w *rollout) validateDecision(ctx workflow.Context, in approval.DecisionInput) error {
	in, g, err := w.Admit(ctx, in, "")
	if err != nil {
		return err
	}
	// Before "not offered": a plain approve under a perf warning gets the reason.
	if err := w.perfValidateDecision(g, in); err != nil {
		return err
	}
	if err := approval.CheckChoice(g, in); err != nil {
		return err
	}
	if w.isRollbackGate(g.ID) && in.Choice == approval.ChoiceAbort && strings.TrimSpace(in.Reason) == "" {
		return fmt.Errorf("leaving constraints a rollback could not drop needs a reason")
	}
	if err := w.CheckVoter(g, in); err != nil {
		return err
	}
	for _, c := range in.Constraints {
		if !w.hasFK(c) {
			return fmt.Errorf("constraint %q is not in the plan", c)
		}
	}
	return w.impossibleChoice(g, in)
}

// applyDecision records a validated vote; a decision limited to some
// constraints keeps that scope for the step that acts on it.
func (w *rollout) applyDecision(ctx workflow.Context, in approval.DecisionInput, defaultVia string) approval.GateView {
	g, _, view := w.Apply(ctx, in, defaultVia)
	if view.Waiting == 0 && g.Status != approval.GateOpen && len(in.Constraints) > 0 {
		w.gateScope[g.ID] = in.Constraints
	}
	return view
}

// validateControl checks pause/resume/abort/rollback requests.
func (w *rollout) validateControl(ctx workflow.Context, kind string, in approval.ControlInput) error {
	in, roles, err := w.AdmitControl(ctx, w.id, kind, in)
	if err != nil {
		return err
	}
	if w.st.State.Terminal() || w.finishing {
		return fmt.Errorf("rollout is already finishing (%s)", w.st.State)
	}
	if w.Strict() {
		if err := w.MayControl(kind, in.Rollback, in.Actor, roles, w.in.Requester, w.rolloutEnvs()); err != nil {
			return err
		}
	} else if ops := w.approval().Operators; len(ops) > 0 && !strings.EqualFold(in.Actor, w.in.Requester) &&
		!slices.ContainsFunc(ops, func(o string) bool { return strings.EqualFold(o, in.Actor) }) {
		return fmt.Errorf("%s may not %s this rollout (operators: %s, and the requester)", in.Actor, kind, strings.Join(ops, ", "))
	}
	switch kind {
	case approval.UpdatePause:
		if w.paused {
			return fmt.Errorf("rollout is already paused")
		}
	case approval.UpdateResume:
		if !w.paused {
			return fmt.Errorf("rollout is not paused")
		}
	case approval.UpdateAbort, approval.UpdateRollback:
		if w.stop != nil {
			return fmt.Errorf("rollout is already stopping (%s requested by %s)", w.stop.kind, w.stop.in.Actor)
		}
		if kind == approval.UpdateRollback && strings.TrimSpace(in.Reason) == "" {
			return fmt.Errorf("a rollback needs a reason")
		}
	}
	return nil
}

// applyControl performs a validated control request.
func (w *rollout) applyControl(ctx workflow.Context, kind string, in approval.ControlInput, defaultVia string) approval.Ack {
	in, _, _ = w.AdmitControl(ctx, w.id, kind, in) // validated: this only puts in the proven actor
	w.Remember(in.Proof, workflow.Now(ctx))
	in.Via = cmp.Or(in.Via, defaultVia)
	d := approval.Decision{Action: kind, Actor: strings.TrimSpace(in.Actor), Reason: in.Reason, Via: in.Via, Time: workflow.Now(ctx)}
	if kind == approval.UpdateAbort && in.Rollback {
		d.Action = "abort+rollback"
	}
	w.Decisions = append(w.Decisions, d)
	switch kind {
	case approval.UpdatePause:
		w.paused = true
		w.st.Paused = true
		w.event(ctx, w.st.Environment, "control", fmt.Sprintf("paused by %s (%s)", d.Actor, approval.OrNoReason(in.Reason)))
		return approval.Ack{Accepted: true, Message: "paused: the rollout holds before its next step"}
	case approval.UpdateResume:
		w.paused = false
		w.st.Paused = false
		w.event(ctx, w.st.Environment, "control", fmt.Sprintf("resumed by %s", d.Actor))
		return approval.Ack{Accepted: true, Message: "resumed"}
	}
	w.stop = &stopRequest{kind: kind, in: in, rollback: kind == approval.UpdateRollback || in.Rollback}
	if w.cancelStep != nil {
		w.cancelStep()
	}
	w.event(ctx, w.st.Environment, "control", fmt.Sprintf("%s requested by %s (%s)", d.Action, d.Actor, approval.OrNoReason(in.Reason)))
	if w.stop.rollback {
		return approval.Ack{Accepted: true, Message: "stopping: this rollout's constraints will be dropped in every environment it touched"}
	}
	return approval.Ack{Accepted: true, Message: "stopping: the current step is cancelled; applied constraints stay"}
}

// setupHandlers registers the queries, then the board's decide and control
// Updates (with validators) and their signal equivalents.
func (w *rollout) setupHandlers(ctx workflow.Context) error {
	w.Board.Log = func(ctx workflow.Context, env, phase, msg string) {
		w.event(ctx, cmp.Or(env, w.st.Environment), phase, msg)
	}
	// Descriptions are what the Temporal UI's query and update menus show.
	// The status is a bounded copy: a large plan's whole status would
	// pass Temporal's payload limit; the constraints query pages the rest.
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryStatus, func() (*Status, error) { return w.snapshot().Bounded(StatusLimitsQuery), nil },
		workflow.QueryHandlerOptions{Description: HandlerDescription(QueryStatus)}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryConstraints, func(q ConstraintsQuery) (ConstraintsPage, error) { return w.snapshot().ConstraintPage(q) },
		workflow.QueryHandlerOptions{Description: HandlerDescription(QueryConstraints)}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryReport, func() (string, error) { return w.snapshot().Report(), nil },
		workflow.QueryHandlerOptions{Description: HandlerDescription(QueryReport)}); err != nil {
		return err
	}
	h := approval.Handlers{DecideDescription: HandlerDescription(approval.UpdateDecide),
		ValidateDecision: w.validateDecision, ApplyDecision: w.applyDecision}
	// The order is the registration order, which replay depends on.
	for _, ks := range [][2]string{{approval.UpdatePause, approval.SignalPause}, {approval.UpdateResume, approval.SignalResume},
		{approval.UpdateAbort, approval.SignalAbort}, {approval.UpdateRollback, approval.SignalRollback}} {
		kind := ks[0]
		h.Controls = append(h.Controls, approval.Control{Update: kind, Signal: ks[1], Description: HandlerDescription(kind),
			Validate: func(ctx workflow.Context, in approval.ControlInput) error { return w.validateControl(ctx, kind, in) },
			Apply: func(ctx workflow.Context, in approval.ControlInput, via string) approval.Ack {
				return w.applyControl(ctx, kind, in, via)
			}})
	}
	return w.Register(ctx, h)
}
