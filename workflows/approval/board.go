package approval

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// Board holds the gates of one workflow run and decides them: it opens a
// gate, waits for it (and for its deadline), checks and records votes, and
// registers the decide and control handlers with their signal equivalents.
// FKRollout and FKFleetRollout each keep one; what differs between them
// (extra checks, what a control does) comes in through Handlers.
type Board struct {
	Guard
	// WorkflowID is the run's workflow id; signed claims name it.
	WorkflowID string
	// Requester started the run. Subject names the run in four-eyes
	// messages ("rollout", "fleet rollout").
	Requester string
	Subject   string
	Gates     []*Gate
	Decisions []Decision
	Refusals  []Refusal
	// Log writes one line to the run's timeline; env is empty for lines
	// that belong to no gate (refused signals), phase is "gate" or "control".
	Log func(ctx workflow.Context, env, phase, msg string)
}

// GateSpec is a gate to open.
type GateSpec struct {
	ID          string
	Kind        notify.GateKind
	Environment string
	Title       string
	Summary     string
	Choices     []string
	Rule        GateRule
	// Detail is what the notification shows besides title, summary and
	// choices (orphans, staging results); nil for none.
	Detail *notify.Gate
}

// Open registers an open gate. Its deadline is the rule's timeout from now.
func (b *Board) Open(ctx workflow.Context, s GateSpec) *Gate {
	g := &Gate{ID: s.ID, Kind: s.Kind, Environment: s.Environment, Title: s.Title, Summary: s.Summary,
		Choices: s.Choices, Status: GateOpen, Rule: s.Rule, OpenedAt: workflow.Now(ctx)}
	if d, _ := time.ParseDuration(s.Rule.Timeout); d > 0 {
		dl := g.OpenedAt.Add(d)
		g.Deadline = &dl
	}
	detail := s.Detail
	if detail == nil {
		detail = &notify.Gate{}
	}
	detail.ID, detail.Kind, detail.Title, detail.Summary = g.ID, s.Kind, s.Title, s.Summary
	detail.Choices = Labels(s.Choices)
	g.Detail = detail
	b.Gates = append(b.Gates, g)
	b.Log(ctx, g.Environment, "gate", fmt.Sprintf("gate %s opened: %s", g.ID, s.Title))
	return g
}

// Await waits until g is decided, its deadline passes (a labelled timer) or
// stopping turns true; a gate still open afterwards timed out or is being
// stopped. The error is the wait's own (the run was cancelled).
func (b *Board) Await(ctx workflow.Context, g *Gate, stopping func() bool) error {
	fired := false
	tctx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	if g.Deadline != nil {
		timer := workflow.NewTimerWithOptions(tctx, g.Deadline.Sub(g.OpenedAt), workflow.TimerOptions{
			Summary: fmt.Sprintf("gate %s times out → %s", g.ID, g.Rule.OnTimeout),
		})
		workflow.Go(ctx, func(gctx workflow.Context) {
			if timer.Get(gctx, nil) == nil {
				fired = true
			}
		})
	}
	return workflow.Await(ctx, func() bool { return g.Status != GateOpen || fired || stopping() })
}

// TimeOut closes a gate whose deadline passed: it applies the rule's
// on_timeout. With fallback, a choice the gate does not offer, or one the
// worker's policy does not let a timeout apply there, gives way to the
// conservative choice; wave gates, whose on_timeout is checked at start,
// go without.
func (b *Board) TimeOut(ctx workflow.Context, g *Gate, fallback bool) Decision {
	d := Decision{GateID: g.ID, Action: g.Rule.OnTimeout, Actor: "timeout", Via: "timer",
		Reason: fmt.Sprintf("no decision within %s; default applied", g.Rule.Timeout), Time: workflow.Now(ctx)}
	if fb := TimeoutFallback(g, b.TimeoutMayApply); fallback && fb != d.Action &&
		workflow.GetVersion(ctx, TimeoutFallbackVersion, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
		d.Reason = fmt.Sprintf("no decision within %s; on_timeout %q is not offered by this gate, so the conservative %q applies", g.Rule.Timeout, d.Action, fb)
		d.Action = fb
	}
	g.Status, g.Decision = GateTimedOut, &d
	b.Decisions = append(b.Decisions, d)
	b.Log(ctx, g.Environment, "gate", fmt.Sprintf("gate %s timed out → %s", g.ID, d.Action))
	return d
}

// Find returns the gate with this id, or nil.
func (b *Board) Find(id string) *Gate {
	for _, g := range b.Gates {
		if g.ID == id {
			return g
		}
	}
	return nil
}

// OpenIDs are the ids of the gates still open.
func (b *Board) OpenIDs() []string {
	var ids []string
	for _, g := range b.Gates {
		if g.Status == GateOpen {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// Admit is the first part of every decide validator: the proven identity
// (claimed actor and roles replaced) and a known gate that is still open.
// hint, when not empty, is added to the unknown-gate error. No state changes.
func (b *Board) Admit(ctx workflow.Context, in DecisionInput, hint string) (DecisionInput, *Gate, error) {
	in, err := b.AdmitDecision(ctx, b.WorkflowID, in)
	if err != nil {
		return in, nil, err
	}
	g := b.Find(in.GateID)
	if g == nil {
		where := "no gate is open"
		if open := b.OpenIDs(); len(open) > 0 {
			where = "open gates: " + strings.Join(open, ", ")
		}
		if hint != "" {
			where += "; " + hint
		}
		return in, nil, fmt.Errorf("unknown gate %q (%s)", in.GateID, where)
	}
	return in, g, g.ClosedError()
}

// CheckChoice refuses a choice the gate does not offer.
func CheckChoice(g *Gate, in DecisionInput) error {
	if !slices.Contains(g.Choices, in.Choice) {
		return fmt.Errorf("choice %q is not offered by gate %s (choices: %s)", in.Choice, g.ID, strings.Join(g.Choices, ", "))
	}
	return nil
}

// CheckVoter applies four-eyes, the gate's approvers and one vote per
// person to an admitted decision.
func (b *Board) CheckVoter(g *Gate, in DecisionInput) error {
	return g.CheckVoter(in, b.Requester, b.Subject, b.Strict())
}

// Apply records a validated vote: it closes the gate on a conservative
// choice or on MinApprovals agreeing votes; the view says which (Waiting
// is how many more approvals the choice needs).
func (b *Board) Apply(ctx workflow.Context, in DecisionInput, defaultVia string) (g *Gate, d Decision, view GateView) {
	in, _ = b.AdmitDecision(ctx, b.WorkflowID, in) // validated: this only puts in the proven identity
	b.Remember(in.Proof, workflow.Now(ctx))
	in.Via = cmp.Or(in.Via, defaultVia)
	g = b.Find(in.GateID)
	d, waiting := g.Vote(ctx, in)
	b.Decisions = append(b.Decisions, d)
	if waiting == 0 {
		b.Log(ctx, g.Environment, "gate", fmt.Sprintf("gate %s decided: %s by %s (%s)", g.ID, d.Action, d.Actor, OrNoReason(d.Reason)))
		return g, d, GateView{GateID: g.ID, Status: g.Status, Decision: &d, Message: fmt.Sprintf("gate %s decided: %s by %s", g.ID, d.Action, d.Actor)}
	}
	b.Log(ctx, g.Environment, "gate", fmt.Sprintf("gate %s: %s votes %s; %d more approval(s) needed", g.ID, d.Actor, d.Action, waiting))
	return g, d, g.PendingView(waiting, in.Choice)
}

// Refuse records a refused signal (a signal cannot answer, so the refusal
// is what the requester and auditors see).
func (b *Board) Refuse(ctx workflow.Context, signal, actor, gate string, err error) {
	b.Refusals = AppendRefusal(b.Refusals, Refusal{Signal: signal, Actor: actor, GateID: gate, Reason: err.Error(), Time: workflow.Now(ctx)})
	b.Log(ctx, "", "control", fmt.Sprintf("signal %s from %s refused: %v", signal, actor, err))
}

// Handlers are what a workflow adds to the board's handlers.
type Handlers struct {
	// DecideDescription is what the Temporal UI shows next to the decide Update.
	DecideDescription string
	// ValidateDecision is the whole decide validator (Admit, the
	// workflow's own checks, CheckChoice, CheckVoter); it must not change
	// state. ApplyDecision applies a validated decision.
	ValidateDecision func(ctx workflow.Context, in DecisionInput) error
	ApplyDecision    func(ctx workflow.Context, in DecisionInput, defaultVia string) GateView
	// Controls are the control Updates the workflow offers, in the order
	// they are registered (the order must not change: replay).
	Controls []Control
}

// Control is one control Update (pause, resume, abort, rollback) with its
// signal equivalent.
type Control struct {
	Update, Signal, Description string
	Validate                    func(ctx workflow.Context, in ControlInput) error
	Apply                       func(ctx workflow.Context, in ControlInput, defaultVia string) Ack
}

// Register registers the decide Update, the controls, and a listener for
// their signal equivalents and for record-refusal. Signals are validated
// like the Updates; a refused one is recorded with Refuse.
func (b *Board) Register(ctx workflow.Context, h Handlers) error {
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDecide,
		func(ctx workflow.Context, in DecisionInput) (GateView, error) {
			return h.ApplyDecision(ctx, in, ""), nil
		},
		workflow.UpdateHandlerOptions{Validator: h.ValidateDecision, Description: h.DecideDescription}); err != nil {
		return fmt.Errorf("register %s: %w", UpdateDecide, err)
	}
	for _, c := range h.Controls {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, c.Update,
			func(ctx workflow.Context, in ControlInput) (Ack, error) { return c.Apply(ctx, in, ""), nil },
			workflow.UpdateHandlerOptions{Validator: c.Validate, Description: c.Description}); err != nil {
			return fmt.Errorf("register %s: %w", c.Update, err)
		}
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalDecide), func(ch workflow.ReceiveChannel, _ bool) {
			var in DecisionInput
			ch.Receive(ctx, &in)
			// Via is part of what was signed: default it only after the check.
			if err := h.ValidateDecision(ctx, in); err != nil {
				b.Refuse(ctx, SignalDecide, in.Actor, in.GateID, err)
				return
			}
			h.ApplyDecision(ctx, in, "signal")
		})
		// A slice, not a map: registration order must be the same on replay.
		for _, c := range h.Controls {
			sel.AddReceive(workflow.GetSignalChannel(ctx, c.Signal), func(ch workflow.ReceiveChannel, _ bool) {
				var in ControlInput
				ch.Receive(ctx, &in)
				if err := c.Validate(ctx, in); err != nil {
					b.Refuse(ctx, c.Signal, in.Actor, "", err)
					return
				}
				c.Apply(ctx, in, "signal")
			})
		}
		// A client whose decide Update was refused (Slack) reports it here,
		// because a rejected Update leaves no trace in history. Record only.
		sel.AddReceive(workflow.GetSignalChannel(ctx, SignalRecordRefusal), func(ch workflow.ReceiveChannel, _ bool) {
			var r Refusal
			ch.Receive(ctx, &r)
			if !b.AdmitRefusal(ctx, b.WorkflowID, r) {
				b.DroppedRefusals++
				return
			}
			b.Refuse(ctx, r.Signal, r.Actor, r.GateID, errors.New(r.Reason))
		})
		for {
			sel.Select(ctx)
		}
	})
	return nil
}

// OpenedEvent is the notification that g opened (Slack posts it with its
// buttons; the message reference comes back in the receipt).
func OpenedEvent(g *Gate, phase string) notify.Event {
	detail := g.Detail
	if detail != nil && len(g.Rule.Approvers) > 0 {
		// Who may decide travels with the message so the notifier can
		// mention them; the gate's own detail stays as it was.
		d := *detail
		d.Approvers = g.Rule.Approvers
		detail = &d
	}
	return notify.Event{Kind: notify.KindGateOpened, Environment: g.Environment, Phase: phase, Text: g.Title, Gate: detail}
}

// DecidedEvent is the notification that g was decided by d; it updates the
// gate's message in place, so its buttons go away.
func DecidedEvent(g *Gate, d Decision, phase string) notify.Event {
	return notify.Event{Kind: notify.KindGateDecided, Environment: g.Environment, Phase: phase,
		Text: fmt.Sprintf("%s: %s by %s", g.ID, d.Action, d.Actor), Gate: g.Detail, Message: g.Message,
		Decision: &notify.Decision{Actor: d.Actor, Choice: d.Action, Reason: d.Reason, Time: d.Time, SlackUser: d.SlackUser, Via: d.Via}}
}
