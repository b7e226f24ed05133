package approval

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// Rule resolves the policy of a gate: "kind/environment" wins over "kind",
// which wins over the default.
func (p Policy) Rule(kind notify.GateKind, env string) GateRule {
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

// Admits reports whether actor (with roles) is an approver under r. An
// empty list admits anyone only in histories recorded before the worker's
// policy existed; under the policy (strict) it admits nobody.
func (r GateRule) Admits(actor string, roles []string, strict bool) bool {
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

// TimeoutFallbackVersion marks histories in which a timeout whose
// on_timeout the gate does not offer applies TimeoutFallback.
const TimeoutFallbackVersion = "timeout-fallback"

// TimeoutFallback is what a timed-out gate applies: its rule's on_timeout
// when the gate offers it (abort is understood by every gate), else the
// conservative choice: reject on a promotion, abort elsewhere. A default
// rule covers every kind of gate, so "continue" or "approve" there must
// not slip past a gate that never offered it.
func TimeoutFallback(g *Gate, may func(env, choice string) bool) string {
	if g.Rule.OnTimeout == ChoiceAbort || (slices.Contains(g.Choices, g.Rule.OnTimeout) && may(g.Environment, g.Rule.OnTimeout)) {
		return g.Rule.OnTimeout
	}
	if slices.Contains(g.Choices, ChoiceReject) {
		return ChoiceReject
	}
	return ChoiceAbort
}

// ClosedError refuses a decision on a gate that is no longer open (nil
// while it is).
func (g *Gate) ClosedError() error {
	if g.Status == GateOpen {
		return nil
	}
	if g.Decision != nil {
		return fmt.Errorf("gate %s is closed (%s: %s by %s at %s)", g.ID, g.Status, g.Decision.Action, g.Decision.Actor, g.Decision.Time.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("gate %s is closed (%s)", g.ID, g.Status)
}

// CheckVoter applies four-eyes (the requester of this `what` may only
// choose conservatively, unless the rule allows them), the rule's
// approvers and one vote per person.
func (g *Gate) CheckVoter(in DecisionInput, requester, what string, strict bool) error {
	isRequester := strings.EqualFold(strings.TrimSpace(in.Actor), strings.TrimSpace(requester))
	if isRequester && !g.Rule.AllowRequester && !Conservative(in.Choice) {
		return fmt.Errorf("four-eyes: %s requested this %s and cannot choose %q on its gate %s; another approver must", in.Actor, what, in.Choice, g.ID)
	}
	if !g.Rule.Admits(in.Actor, in.Roles, strict) && !(isRequester && Conservative(in.Choice)) {
		return fmt.Errorf("%s is not an allowed approver for gate %s (allowed: %s)", in.Actor, g.ID, NoneIfEmpty(g.Rule.Approvers))
	}
	for _, v := range g.Votes {
		if strings.EqualFold(v.Actor, in.Actor) {
			return fmt.Errorf("%s already decided on gate %s (%s at %s); a second vote by the same person does not count", in.Actor, g.ID, v.Action, v.Time.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// Vote records a validated vote. A conservative choice, or MinApprovals
// agreeing votes, decide the gate (waiting 0); otherwise waiting is how many
// more distinct approvers the choice needs.
func (g *Gate) Vote(ctx workflow.Context, in DecisionInput) (d Decision, waiting int) {
	d = Decision{GateID: g.ID, Action: in.Choice, Actor: strings.TrimSpace(in.Actor), Roles: in.Roles, Reason: in.Reason,
		Via: in.Via, SlackUser: in.SlackUser, Time: workflow.Now(ctx)}
	g.Votes = append(g.Votes, d)
	agree := 0
	for _, v := range g.Votes {
		if v.Action == in.Choice {
			agree++
		}
	}
	if Conservative(in.Choice) || agree >= g.Rule.MinApprovals {
		g.Status, g.Decision = GateDecided, &d
		return d, 0
	}
	return d, g.Rule.MinApprovals - agree
}

// PendingView answers a vote that did not decide the gate yet.
func (g *Gate) PendingView(waiting int, choice string) GateView {
	return GateView{GateID: g.ID, Status: g.Status, Waiting: waiting, Votes: len(g.Votes), Needed: g.Rule.MinApprovals,
		Message: fmt.Sprintf("vote recorded; gate %s needs %d more distinct approver(s) for %s", g.ID, waiting, choice)}
}

func OrNoReason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// AppendRefusal records a refusal, keeping the newest 100 so a client
// retrying in a loop cannot grow the status without bound.
func AppendRefusal(list []Refusal, r Refusal) []Refusal {
	list = append(list, r)
	if len(list) > 100 {
		list = list[len(list)-100:]
	}
	return list
}
