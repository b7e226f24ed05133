// Package approval is the gate kernel every workflow with human decisions
// shares (FKRollout and FKFleetRollout): gates and their rules, choices with
// their labels and confirm texts, votes, four-eyes, signed identities, the
// decide and control Updates with their validators and signal equivalents,
// and the record of refusals. Clients (CLI, Slack, the UI) use its types to
// decide; the workflows use its Board to ask.
package approval

import (
	"time"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
)

// Names of the handlers every gated workflow registers. They are part of
// the durable contract: renaming one breaks running workflows.
const (
	// UpdateDecide decides a gate (DecisionInput → GateView). The validator
	// rejects unknown/closed gates, disallowed approvers, the requester
	// approving their own rollout and a second vote by the same person.
	UpdateDecide = "decide"
	// UpdatePause / UpdateResume hold and release the rollout between steps
	// (ControlInput → Ack).
	UpdatePause  = "pause"
	UpdateResume = "resume"
	// UpdateAbort stops the rollout; with Rollback it first drops every
	// constraint this rollout created (ControlInput → Ack).
	UpdateAbort = "abort"
	// UpdateRollback is the manual rollback ("critical user complaints" in
	// the decision matrix): drops this rollout's constraints in every
	// environment and ends the rollout as rolled back. Reason required.
	UpdateRollback = "rollback"

	// Signal equivalents for clients that can only signal. A refused signal
	// cannot answer, so it is recorded in Status.Refusals with its reason.
	SignalDecide   = "decide-signal"
	SignalPause    = "pause-signal"
	SignalResume   = "resume-signal"
	SignalAbort    = "abort-signal"
	SignalRollback = "rollback-signal"

	// SignalRecordRefusal (Refusal) records a decision that a client's
	// decide Update was refused (a Slack click by someone the policy does
	// not allow): it lands in Status.Refusals. It never decides anything.
	SignalRecordRefusal = "record-refusal"
)

// Policy says who may decide which gate.
type Policy struct {
	// Gates by key: a gate kind ("promotion", "remediation", "approval"),
	// optionally qualified by environment ("remediation/production"), which
	// wins over the bare kind.
	Gates map[string]GateRule `json:"gates,omitempty"`
	// Default applies to gates no key matches.
	Default GateRule `json:"default"`
	// Operators may pause, resume, abort and roll back besides the
	// requester (empty: anyone).
	Operators []string `json:"operators,omitempty"`
}

// GateRule is the policy of one gate.
type GateRule struct {
	// Approvers are identities ("alice@example.com") or roles ("role:dba",
	// matched against the roles a client such as Slack passes). Empty:
	// anyone but the requester.
	Approvers []string `json:"approvers,omitempty"`
	// MinApprovals is how many distinct approvers must agree on a choice
	// that proceeds (default 1). A conservative choice (reject, abort,
	// re-audit, rollback) takes effect at once.
	MinApprovals int `json:"min_approvals,omitempty"`
	// AllowRequester turns four-eyes off for this gate (default off).
	AllowRequester bool `json:"allow_requester,omitempty"`
	// Timeout, e.g. "24h"; empty waits forever.
	Timeout string `json:"timeout,omitempty"`
	// OnTimeout is the choice applied when the gate times out (default
	// "reject" for promotion, "abort" otherwise).
	OnTimeout string `json:"on_timeout,omitempty"`
}

// DecisionInput decides a gate (UpdateDecide, SignalDecide). The JSON shape
// is what the Slack handler sends.
type DecisionInput struct {
	GateID string `json:"gate_id"`
	Choice string `json:"choice"`
	Actor  string `json:"actor"`
	// Roles the client vouches for (Slack user groups).
	Roles     []string `json:"roles,omitempty"`
	SlackUser string   `json:"slack_user,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	// Via is the channel: "cli", "slack", "ui", "signal".
	Via string `json:"via,omitempty"`
	// Constraints restricts a remediation choice to these constraint names
	// (default: every constraint with orphans).
	Constraints []string `json:"constraints,omitempty"`
	// Proof signs the fields above (see DecisionClaim); the validator
	// refuses a decision without a valid one unless the worker trusts
	// client identities (development mode).
	Proof *identity.Proof `json:"proof,omitempty"`
}

// ControlInput pauses, resumes, aborts or rolls back.
type ControlInput struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
	// Rollback (abort only) drops what this rollout created before stopping.
	Rollback bool   `json:"rollback,omitempty"`
	Via      string `json:"via,omitempty"`
	// Proof signs the request (see ControlClaim).
	Proof *identity.Proof `json:"proof,omitempty"`
}

// Ack answers a control update.
type Ack struct {
	Accepted bool   `json:"accepted"`
	Message  string `json:"message"`
}

// Gate is a human decision point.
type Gate struct {
	ID          string          `json:"id"`
	Kind        notify.GateKind `json:"kind"`
	Environment string          `json:"environment"`
	Title       string          `json:"title"`
	Summary     string          `json:"summary,omitempty"`
	Choices     []string        `json:"choices"`
	Status      GateStatus      `json:"status"`
	Rule        GateRule        `json:"rule"`
	OpenedAt    time.Time       `json:"opened_at"`
	Deadline    *time.Time      `json:"deadline,omitempty"`
	// Votes are the decisions received so far (MinApprovals > 1).
	Votes    []Decision `json:"votes,omitempty"`
	Decision *Decision  `json:"decision,omitempty"`
	// Detail is what the notification shows (orphans, staging results).
	Detail *notify.Gate `json:"detail,omitempty"`
	// Message is where the notifier posted it (updated in place on decision).
	Message notify.MessageRef `json:"message"`
}

// GateStatus is a gate's lifecycle.
type GateStatus string

const (
	GateOpen      GateStatus = "open"
	GateDecided   GateStatus = "decided"
	GateTimedOut  GateStatus = "timed-out"
	GateCancelled GateStatus = "cancelled"
)

// GateView answers a decide update.
type GateView struct {
	GateID string     `json:"gate_id"`
	Status GateStatus `json:"status"`
	// Waiting is how many more approvals the leading choice needs.
	Waiting int `json:"waiting,omitempty"`
	// Votes and Needed (a vote that did not decide yet): votes in, and
	// distinct approvals the gate needs to proceed.
	Votes    int       `json:"votes,omitempty"`
	Needed   int       `json:"needed,omitempty"`
	Decision *Decision `json:"decision,omitempty"`
	Message  string    `json:"message"`
}

// Decision is a recorded vote or control action, with actor, time, reason.
type Decision struct {
	GateID    string    `json:"gate_id,omitempty"`
	Action    string    `json:"action"`
	Actor     string    `json:"actor"`
	Roles     []string  `json:"roles,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Via       string    `json:"via,omitempty"`
	SlackUser string    `json:"slack_user,omitempty"`
	Time      time.Time `json:"time"`
}

// Refusal is a signal the validator refused.
type Refusal struct {
	Signal string    `json:"signal"`
	Actor  string    `json:"actor"`
	GateID string    `json:"gate_id,omitempty"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	// Proof (record-refusal only) is the worker's Slack signer or the
	// actor's own key: unsigned records are dropped, so nobody can write
	// refusals in someone else's name.
	Proof *identity.Proof `json:"proof,omitempty"`
}
