package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// rule resolves the policy of a gate: "kind/environment" wins over "kind",
// which wins over the default.
func (p ApprovalPolicy) rule(kind notify.GateKind, env string) GateRule {
	r, ok := p.Gates[string(kind)+"/"+env]
	if !ok {
		r, ok = p.Gates[string(kind)]
	}
	if !ok {
		r = p.Default
	}
	if r.MinApprovals < 1 {
		r.MinApprovals = 1
	}
	if r.OnTimeout == "" {
		if kind == notify.GatePromotion {
			r.OnTimeout = ChoiceReject
		} else {
			r.OnTimeout = ChoiceAbort
		}
	}
	return r
}

// admits reports whether actor (with roles) is an approver under r. An
// empty list admits anyone only in histories recorded before the worker's
// policy existed; under the policy (strict) it admits nobody.
func (r GateRule) admits(actor string, roles []string, strict bool) bool {
	if len(r.Approvers) == 0 {
		return !strict
	}
	for _, a := range r.Approvers {
		if role, ok := strings.CutPrefix(a, "role:"); ok {
			if slices.ContainsFunc(roles, func(x string) bool { return strings.EqualFold(x, role) }) {
				return true
			}
			continue
		}
		if strings.EqualFold(a, actor) {
			return true
		}
	}
	return false
}

var choiceLabels = map[string]notify.Choice{
	ChoiceApprove:    {ID: ChoiceApprove, Label: "Approve", Style: "primary"},
	ChoiceReject:     {ID: ChoiceReject, Label: "Reject", Style: "danger", NeedsReason: true},
	ChoiceDelete:     {ID: ChoiceDelete, Label: "Delete orphans", Style: "danger", Confirm: "Delete the orphaned rows (copied to fkrollout.quarantine first)?"},
	ChoiceSetNull:    {ID: ChoiceSetNull, Label: "Set NULL", Style: "danger", Confirm: "Set the orphaned references to NULL (originals copied to fkrollout.quarantine first)?"},
	ChoiceAcceptDebt: {ID: ChoiceAcceptDebt, Label: "Accept as debt", NeedsReason: true},
	ChoiceReAudit:    {ID: ChoiceReAudit, Label: "Re-audit (parents restored)"},
	ChoiceAbort:      {ID: ChoiceAbort, Label: "Abort", Style: "danger", NeedsReason: true},
	ChoiceContinue:   {ID: ChoiceContinue, Label: "Continue", Style: "primary"},
	ChoiceRollback:   {ID: ChoiceRollback, Label: "Roll back", Style: "danger", NeedsReason: true, Confirm: "Drop every constraint this rollout created?"},
	ChoiceRetry:      {ID: ChoiceRetry, Label: "Retry"},
	ChoiceSkip:       {ID: ChoiceSkip, Label: "Skip this constraint (record as debt)", NeedsReason: true},
	ChoiceDeleteWithDependents: {ID: ChoiceDeleteWithDependents, Label: "Delete with dependents", Style: "danger", NeedsReason: true,
		Confirm: "Delete the orphaned rows and every row that references them (all copied to fkrollout.quarantine first, children first)?"},
	// The perf phase's override of a warning (workflows/perf.go).
	ChoiceApproveOverride: {ID: ChoiceApproveOverride, Label: "Approve despite perf warning", Style: "danger", NeedsReason: true,
		Confirm: "The perf phase measured an overhead above the acceptable limit. Promote anyway?"},
}

func notifyChoices(ids []string) []notify.Choice {
	out := make([]notify.Choice, 0, len(ids))
	for _, id := range ids {
		c, ok := choiceLabels[id]
		if !ok {
			c = notify.Choice{ID: id, Label: id}
		}
		out = append(out, c)
	}
	return out
}

// timeoutChoices are the choices each gate kind can offer that a timeout
// may apply (approve-override needs a person; abort stops any gate).
var timeoutChoices = map[notify.GateKind][]string{
	notify.GateRemediation: {ChoiceDelete, ChoiceSetNull, ChoiceAcceptDebt, ChoiceReAudit, ChoiceAbort},
	notify.GatePromotion:   {ChoiceApprove, ChoiceReject, ChoiceAbort},
	notify.GateApproval:    {ChoiceRetry, ChoiceContinue, ChoiceRollback, ChoiceAbort},
	notify.GateInvestigate: {ChoiceContinue, ChoiceRollback, ChoiceAbort},
}

// timeoutFallbackVersion marks histories in which a timeout whose
// on_timeout the gate does not offer applies timeoutFallback.
const timeoutFallbackVersion = "timeout-fallback"

// timeoutFallback is what a timed-out gate applies: its rule's on_timeout
// when the gate offers it (abort is understood by every gate), else the
// conservative choice: reject on a promotion, abort elsewhere. A default
// rule covers every kind of gate, so "continue" or "approve" there must
// not slip past a gate that never offered it.
func timeoutFallback(g *Gate, may func(env, choice string) bool) string {
	if g.Rule.OnTimeout == ChoiceAbort || (slices.Contains(g.Choices, g.Rule.OnTimeout) && may(g.Environment, g.Rule.OnTimeout)) {
		return g.Rule.OnTimeout
	}
	if slices.Contains(g.Choices, ChoiceReject) {
		return ChoiceReject
	}
	return ChoiceAbort
}

// openGate registers a new open gate. Gate IDs are deterministic:
// <environment>/<kind>/<sequence>.
func (w *rollout) openGate(ctx workflow.Context, kind notify.GateKind, env, title, summary string, choices []string, detail *notify.Gate) *Gate {
	w.gateSeq++
	rule := w.approval().rule(kind, env)
	g := &Gate{
		ID:          fmt.Sprintf("%s/%s/%d", env, kind, w.gateSeq),
		Kind:        kind,
		Environment: env,
		Title:       title,
		Summary:     summary,
		Choices:     choices,
		Status:      GateOpen,
		Rule:        rule,
		OpenedAt:    workflow.Now(ctx),
	}
	if d, _ := time.ParseDuration(rule.Timeout); d > 0 {
		dl := g.OpenedAt.Add(d)
		g.Deadline = &dl
	}
	if detail == nil {
		detail = &notify.Gate{}
	}
	detail.ID, detail.Kind, detail.Title, detail.Summary = g.ID, kind, title, summary
	detail.Choices = notifyChoices(choices)
	g.Detail = detail
	w.gates = append(w.gates, g)
	w.event(ctx, env, "gate", fmt.Sprintf("gate %s opened: %s", g.ID, title))
	countMetric(ctx, MetricGatesOpened, map[string]string{"kind": string(kind), "environment": env})
	return g
}

// awaitGate waits for a decision, the gate's timeout (a labelled timer that
// applies the configured default) or a stop request.
func (w *rollout) awaitGate(ctx workflow.Context, g *Gate) (Decision, error) {
	prev := w.st.State
	w.setState(ctx, StateWaitingForGate)
	// The Slack message carries the same block as the CLI status.
	g.Detail.Block = w.gateBlockFor(g)
	r := w.notify(ctx, notify.Event{Kind: notify.KindGateOpened, Environment: g.Environment, Phase: w.st.Phase, Text: g.Title, Gate: g.Detail})
	g.Message = r.Ref

	fired := false
	var cancelTimer workflow.CancelFunc
	if g.Deadline != nil {
		tctx, cancel := workflow.WithCancel(ctx)
		cancelTimer = cancel
		timer := workflow.NewTimerWithOptions(tctx, g.Deadline.Sub(g.OpenedAt), workflow.TimerOptions{
			Summary: fmt.Sprintf("gate %s times out → %s", g.ID, g.Rule.OnTimeout),
		})
		workflow.Go(ctx, func(gctx workflow.Context) {
			if timer.Get(gctx, nil) == nil {
				fired = true
			}
		})
	}
	err := workflow.Await(ctx, func() bool { return g.Status != GateOpen || fired || w.stop != nil })
	if cancelTimer != nil {
		cancelTimer()
	}
	if err != nil {
		return Decision{}, err
	}
	if g.Status == GateOpen {
		if w.stop != nil {
			g.Status = GateCancelled
			w.event(ctx, g.Environment, "gate", fmt.Sprintf("gate %s cancelled: rollout is stopping", g.ID))
			return Decision{}, errStopped
		}
		d := Decision{GateID: g.ID, Action: g.Rule.OnTimeout, Actor: "timeout", Via: "timer",
			Reason: fmt.Sprintf("no decision within %s; default applied", g.Rule.Timeout), Time: workflow.Now(ctx)}
		if fb := timeoutFallback(g, w.timeoutMayApply); fb != d.Action &&
			workflow.GetVersion(ctx, timeoutFallbackVersion, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
			d.Reason = fmt.Sprintf("no decision within %s; on_timeout %q is not offered by this gate, so the conservative %q applies", g.Rule.Timeout, d.Action, fb)
			d.Action = fb
		}
		g.Status, g.Decision = GateTimedOut, &d
		w.decisions = append(w.decisions, d)
		w.event(ctx, g.Environment, "gate", fmt.Sprintf("gate %s timed out → %s", g.ID, d.Action))
	}
	w.setState(ctx, prev)
	if w.st.State == StateWaitingForGate {
		w.setState(ctx, StateRunning)
	}
	d := *g.Decision
	via := d.Via
	if via == "" {
		via = "unknown"
	}
	countMetric(ctx, MetricGateDecisions, map[string]string{"kind": string(g.Kind), "choice": d.Action, "via": via})
	timeMetric(ctx, MetricGateWait, map[string]string{"kind": string(g.Kind)}, d.Time.Sub(g.OpenedAt))
	w.notify(ctx, notify.Event{Kind: notify.KindGateDecided, Environment: g.Environment, Phase: w.st.Phase,
		Text: fmt.Sprintf("%s: %s by %s", g.ID, d.Action, d.Actor), Gate: g.Detail, Message: g.Message,
		Decision: &notify.Decision{Actor: d.Actor, Choice: d.Action, Reason: d.Reason, Time: d.Time, SlackUser: d.SlackUser, Via: d.Via}})
	return d, nil
}

func (w *rollout) findGate(id string) *Gate {
	for _, g := range w.gates {
		if g.ID == id {
			return g
		}
	}
	return nil
}

func (w *rollout) openGateIDs() []string {
	var ids []string
	for _, g := range w.gates {
		if g.Status == GateOpen {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// validateDecision is the update validator: it must not change state.
func (w *rollout) validateDecision(ctx workflow.Context, in DecisionInput) error {
	in, err := w.admitDecision(ctx, w.id, in)
	if err != nil {
		return err
	}
	g := w.findGate(in.GateID)
	if g == nil {
		open := w.openGateIDs()
		if len(open) == 0 {
			return fmt.Errorf("unknown gate %q: no gate is open", in.GateID)
		}
		return fmt.Errorf("unknown gate %q (open gates: %s)", in.GateID, strings.Join(open, ", "))
	}
	if err := g.closedError(); err != nil {
		return err
	}
	// Before "not offered": a plain approve under a perf warning gets the reason.
	if err := w.perfValidateDecision(g, in); err != nil {
		return err
	}
	if !slices.Contains(g.Choices, in.Choice) {
		return fmt.Errorf("choice %q is not offered by gate %s (choices: %s)", in.Choice, g.ID, strings.Join(g.Choices, ", "))
	}
	if err := g.checkVoter(in, w.in.Requester, "rollout", w.strict()); err != nil {
		return err
	}
	for _, c := range in.Constraints {
		if !w.hasFK(c) {
			return fmt.Errorf("constraint %q is not in the plan", c)
		}
	}
	return w.impossibleChoice(g, in)
}

// applyDecision records a validated vote and closes the gate when the
// choice is conservative or has MinApprovals distinct votes.
func (w *rollout) applyDecision(ctx workflow.Context, in DecisionInput, defaultVia string) GateView {
	in, _ = w.admitDecision(ctx, w.id, in) // validated: this only puts in the proven identity
	w.remember(in.Proof, workflow.Now(ctx))
	in.Via = cmp.Or(in.Via, defaultVia)
	g := w.findGate(in.GateID)
	d, waiting := g.vote(ctx, in)
	w.decisions = append(w.decisions, d)
	if waiting == 0 {
		if len(in.Constraints) > 0 {
			w.gateScope[g.ID] = in.Constraints
		}
		w.event(ctx, g.Environment, "gate", fmt.Sprintf("gate %s decided: %s by %s (%s)", g.ID, d.Action, d.Actor, orNone(d.Reason)))
		return GateView{GateID: g.ID, Status: g.Status, Decision: &d, Message: fmt.Sprintf("gate %s decided: %s by %s", g.ID, d.Action, d.Actor)}
	}
	w.event(ctx, g.Environment, "gate", fmt.Sprintf("gate %s: %s votes %s; %d more approval(s) needed", g.ID, d.Actor, d.Action, waiting))
	return g.pendingView(waiting, in.Choice)
}

// The policy every gate shares, rollout or fleet.

// closedError refuses a decision on a gate that is no longer open (nil
// while it is).
func (g *Gate) closedError() error {
	if g.Status == GateOpen {
		return nil
	}
	if g.Decision != nil {
		return fmt.Errorf("gate %s is closed (%s: %s by %s at %s)", g.ID, g.Status, g.Decision.Action, g.Decision.Actor, g.Decision.Time.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("gate %s is closed (%s)", g.ID, g.Status)
}

// checkVoter applies four-eyes (the requester of this `what` may only
// choose conservatively, unless the rule allows them), the rule's
// approvers and one vote per person.
func (g *Gate) checkVoter(in DecisionInput, requester, what string, strict bool) error {
	isRequester := strings.EqualFold(strings.TrimSpace(in.Actor), strings.TrimSpace(requester))
	if isRequester && !g.Rule.AllowRequester && !conservative(in.Choice) {
		return fmt.Errorf("four-eyes: %s requested this %s and cannot choose %q on its gate %s; another approver must", in.Actor, what, in.Choice, g.ID)
	}
	if !g.Rule.admits(in.Actor, in.Roles, strict) && !(isRequester && conservative(in.Choice)) {
		return fmt.Errorf("%s is not an allowed approver for gate %s (allowed: %s)", in.Actor, g.ID, orNoneList(g.Rule.Approvers))
	}
	for _, v := range g.Votes {
		if strings.EqualFold(v.Actor, in.Actor) {
			return fmt.Errorf("%s already decided on gate %s (%s at %s); a second vote by the same person does not count", in.Actor, g.ID, v.Action, v.Time.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// vote records a validated vote. A conservative choice, or MinApprovals
// agreeing votes, decide the gate (waiting 0); otherwise waiting is how many
// more distinct approvers the choice needs.
func (g *Gate) vote(ctx workflow.Context, in DecisionInput) (d Decision, waiting int) {
	d = Decision{GateID: g.ID, Action: in.Choice, Actor: strings.TrimSpace(in.Actor), Roles: in.Roles, Reason: in.Reason,
		Via: in.Via, SlackUser: in.SlackUser, Time: workflow.Now(ctx)}
	g.Votes = append(g.Votes, d)
	agree := 0
	for _, v := range g.Votes {
		if v.Action == in.Choice {
			agree++
		}
	}
	if conservative(in.Choice) || agree >= g.Rule.MinApprovals {
		g.Status, g.Decision = GateDecided, &d
		return d, 0
	}
	return d, g.Rule.MinApprovals - agree
}

// pendingView answers a vote that did not decide the gate yet.
func (g *Gate) pendingView(waiting int, choice string) GateView {
	return GateView{GateID: g.ID, Status: g.Status, Waiting: waiting, Votes: len(g.Votes), Needed: g.Rule.MinApprovals,
		Message: fmt.Sprintf("vote recorded; gate %s needs %d more distinct approver(s) for %s", g.ID, waiting, choice)}
}

// validateControl checks pause/resume/abort/rollback requests.
func (w *rollout) validateControl(ctx workflow.Context, kind string, in ControlInput) error {
	in, roles, err := w.admitControl(ctx, w.id, kind, in)
	if err != nil {
		return err
	}
	if w.st.State.Terminal() || w.finishing {
		return fmt.Errorf("rollout is already finishing (%s)", w.st.State)
	}
	if w.strict() {
		if err := w.mayControl(kind, in.Rollback, in.Actor, roles, w.in.Requester, w.rolloutEnvs()); err != nil {
			return err
		}
	} else if ops := w.approval().Operators; len(ops) > 0 && !strings.EqualFold(in.Actor, w.in.Requester) &&
		!slices.ContainsFunc(ops, func(o string) bool { return strings.EqualFold(o, in.Actor) }) {
		return fmt.Errorf("%s may not %s this rollout (operators: %s, and the requester)", in.Actor, kind, strings.Join(ops, ", "))
	}
	switch kind {
	case UpdatePause:
		if w.paused {
			return fmt.Errorf("rollout is already paused")
		}
	case UpdateResume:
		if !w.paused {
			return fmt.Errorf("rollout is not paused")
		}
	case UpdateAbort, UpdateRollback:
		if w.stop != nil {
			return fmt.Errorf("rollout is already stopping (%s requested by %s)", w.stop.kind, w.stop.in.Actor)
		}
		if kind == UpdateRollback && strings.TrimSpace(in.Reason) == "" {
			return fmt.Errorf("a rollback needs a reason")
		}
	}
	return nil
}

// applyControl performs a validated control request.
func (w *rollout) applyControl(ctx workflow.Context, kind string, in ControlInput, defaultVia string) Ack {
	in, _, _ = w.admitControl(ctx, w.id, kind, in) // validated: this only puts in the proven actor
	w.remember(in.Proof, workflow.Now(ctx))
	in.Via = cmp.Or(in.Via, defaultVia)
	d := Decision{Action: kind, Actor: strings.TrimSpace(in.Actor), Reason: in.Reason, Via: in.Via, Time: workflow.Now(ctx)}
	if kind == UpdateAbort && in.Rollback {
		d.Action = "abort+rollback"
	}
	w.decisions = append(w.decisions, d)
	switch kind {
	case UpdatePause:
		w.paused = true
		w.st.Paused = true
		w.event(ctx, w.st.Environment, "control", fmt.Sprintf("paused by %s (%s)", d.Actor, orNone(in.Reason)))
		return Ack{Accepted: true, Message: "paused: the rollout holds before its next step"}
	case UpdateResume:
		w.paused = false
		w.st.Paused = false
		w.event(ctx, w.st.Environment, "control", fmt.Sprintf("resumed by %s", d.Actor))
		return Ack{Accepted: true, Message: "resumed"}
	}
	w.stop = &stopRequest{kind: kind, in: in, rollback: kind == UpdateRollback || in.Rollback}
	if w.cancelStep != nil {
		w.cancelStep()
	}
	w.event(ctx, w.st.Environment, "control", fmt.Sprintf("%s requested by %s (%s)", d.Action, d.Actor, orNone(in.Reason)))
	if w.stop.rollback {
		return Ack{Accepted: true, Message: "stopping: this rollout's constraints will be dropped in every environment it touched"}
	}
	return Ack{Accepted: true, Message: "stopping: the current step is cancelled; applied constraints stay"}
}

// setupHandlers registers the query, the updates (with validators) and the
// signal equivalents.
func (w *rollout) setupHandlers(ctx workflow.Context) error {
	// Descriptions are what the Temporal UI's query and update menus show.
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryStatus, func() (*Status, error) { return w.snapshot(), nil },
		workflow.QueryHandlerOptions{Description: HandlerDescriptions[QueryStatus]}); err != nil {
		return err
	}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryReport, func() (string, error) { return w.snapshot().Report(), nil },
		workflow.QueryHandlerOptions{Description: HandlerDescriptions[QueryReport]}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, in DecisionInput) (GateView, error) {
			return w.applyDecision(ctx, in, ""), nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in DecisionInput) error { return w.validateDecision(ctx, in) },
			Description: HandlerDescriptions[UpdateDecide]}); err != nil {
		return err
	}
	for _, kind := range []string{UpdatePause, UpdateResume, UpdateAbort, UpdateRollback} {
		kind := kind
		if err := workflow.SetUpdateHandlerWithOptions(ctx, kind,
			func(ctx workflow.Context, in ControlInput) (Ack, error) {
				return w.applyControl(ctx, kind, in, ""), nil
			},
			workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, in ControlInput) error { return w.validateControl(ctx, kind, in) },
				Description: HandlerDescriptions[kind]}); err != nil {
			return err
		}
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalDecide), func(c workflow.ReceiveChannel, _ bool) {
			var in DecisionInput
			c.Receive(ctx, &in)
			// Via is part of what was signed: default it only after the check.
			if err := w.validateDecision(ctx, in); err != nil {
				w.refuse(ctx, SignalDecide, in.Actor, in.GateID, err)
				return
			}
			w.applyDecision(ctx, in, "signal")
		})
		// A slice, not a map: registration order must be the same on replay.
		for _, ks := range [][2]string{{UpdatePause, SignalPause}, {UpdateResume, SignalResume}, {UpdateAbort, SignalAbort}, {UpdateRollback, SignalRollback}} {
			kind, sig := ks[0], ks[1]
			sel.AddReceive(workflow.GetSignalChannel(ctx, sig), func(c workflow.ReceiveChannel, _ bool) {
				var in ControlInput
				c.Receive(ctx, &in)
				if err := w.validateControl(ctx, kind, in); err != nil {
					w.refuse(ctx, sig, in.Actor, "", err)
					return
				}
				w.applyControl(ctx, kind, in, "signal")
			})
		}
		// A client whose decide Update was refused (Slack) reports it here,
		// because a rejected Update leaves no trace in history. Record only.
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalRecordRefusal), func(c workflow.ReceiveChannel, _ bool) {
			var r Refusal
			c.Receive(ctx, &r)
			if !w.admitRefusal(ctx, w.id, r) {
				w.droppedRefusals++
				return
			}
			w.refuse(ctx, r.Signal, r.Actor, r.GateID, fmt.Errorf("%s", r.Reason))
		})
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

func (w *rollout) refuse(ctx workflow.Context, signal, actor, gate string, err error) {
	w.refusals = appendRefusal(w.refusals, Refusal{Signal: signal, Actor: actor, GateID: gate, Reason: err.Error(), Time: workflow.Now(ctx)})
	w.event(ctx, w.st.Environment, "control", fmt.Sprintf("signal %s from %s refused: %v", signal, actor, err))
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// appendRefusal records a refusal, keeping the newest 100 so a client
// retrying in a loop cannot grow the status without bound.
func appendRefusal(list []Refusal, r Refusal) []Refusal {
	list = append(list, r)
	if len(list) > 100 {
		list = list[len(list)-100:]
	}
	return list
}
