// Package workflows is the durable rollout: the seeds' five phases as one
// Temporal workflow (FKRollout) that pauses for humans at gates, waits for
// the production maintenance window, survives worker restarts and reports
// what it is doing at every moment.
//
// This file is the public contract: names of the workflow, its queries,
// updates and signals, the input a release owner pastes into the Temporal
// UI, and the decision/control payloads. Clients (starter, Slack) use only
// these.
package workflows

import (
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/monitor"
)

// Names clients use. They are part of the durable contract: renaming one
// breaks running rollouts.
const (
	// WorkflowName is the registered workflow type.
	WorkflowName = "FKRollout"
	// DefaultTaskQueue is the worker's default task queue.
	DefaultTaskQueue = "fkrollout"

	// QueryStatus returns Status.
	QueryStatus = "status"

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
	// UpdateRollback is the manual rollback of the seeds' decision matrix
	// ("critical user complaints"): drops this rollout's constraints in every
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

// HandlerDescriptions are what the Temporal UI's Queries and Updates menus
// show next to each name.
var HandlerDescriptions = map[string]string{
	QueryStatus: "Where the rollout is: phase, environment, state, open gates (who may decide, votes, deadline), progress per environment, decisions, timeline (JSON)",
	QueryReport: "The completion report (markdown), so far while running",
	UpdateDecide: "Decide an open gate; the answer says whether it was decided or how many approvals it still needs. " +
		`Input: {"gate_id":"production/promotion/2","choice":"approve","actor":"you@example.com","reason":"why","via":"ui"} (current details show the open gate's payload)`,
	UpdatePause:    `Hold the rollout before its next step. Input: {"actor":"you@example.com","reason":"why"}`,
	UpdateResume:   `Release a paused rollout. Input: {"actor":"you@example.com"}`,
	UpdateAbort:    `Stop the rollout; applied constraints stay ("rollback":true drops them first). Input: {"actor":"you@example.com","reason":"why"}`,
	UpdateRollback: `Drop every constraint this rollout created and end it as rolled back; reason required. Input: {"actor":"you@example.com","reason":"why"}`,
}

// Typed search attributes kept up to date by the workflow. They must be
// registered on the namespace (the dev server: --search-attribute
// RolloutPhase=Keyword ...; see SearchAttributes).
var (
	SearchPhase       = temporal.NewSearchAttributeKeyKeyword("RolloutPhase")
	SearchEnvironment = temporal.NewSearchAttributeKeyKeyword("RolloutEnvironment")
	SearchStatus      = temporal.NewSearchAttributeKeyKeyword("RolloutStatus")
	SearchRequester   = temporal.NewSearchAttributeKeyKeyword("Requester")
)

// SearchAttributes returns the attributes to register on a namespace (with
// placeholder values; only the names and types matter).
func SearchAttributes() temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SearchPhase.ValueSet(""), SearchEnvironment.ValueSet(""),
		SearchStatus.ValueSet(""), SearchRequester.ValueSet(""),
	)
}

// SearchAttributeNames are the registered names, all of type Keyword.
var SearchAttributeNames = []string{"RolloutPhase", "RolloutEnvironment", "RolloutStatus", "Requester"}

// Input starts a rollout. It is what README's example JSON fills in; every
// duration is a Go duration string ("24h", "30m"). It names environments;
// their DSNs live in the worker configuration and never here.
type Input struct {
	// Plan is the plan text: YAML (foreign_keys: ...) or the team's
	// migration SQL (ALTER TABLE ... ADD CONSTRAINT ... NOT VALID).
	Plan string `json:"plan"`
	// PlanFormat is how to read Plan: "sql", "yaml" or "json". The CLI
	// sets it from the file's extension; when empty (text pasted into the
	// UI) the format is recognised from the text.
	PlanFormat string `json:"plan_format,omitempty"`
	// Requester is who asked for the rollout; with four-eyes they cannot
	// approve their own gates.
	Requester string `json:"requester"`
	// Environments in rollout order, e.g. staging then production. A
	// promotion gate separates consecutive environments.
	Environments []EnvironmentInput `json:"environments"`
	// Approval says who decides which gate.
	Approval ApprovalPolicy `json:"approval"`
	// Thresholds are the seeds' acceptance figures (used by the promotion
	// summary and the monitor).
	Thresholds Thresholds `json:"thresholds"`
	// Monitor is the watch after production validation.
	Monitor MonitorInput `json:"monitor"`
	// DryRun runs checks, statistics and the audit only; nothing changes.
	DryRun bool `json:"dry_run,omitempty"`
	// Perf is the perf phase (baseline vs with-FKs workload on staging);
	// see PerfInput. Off when absent. Skipped in a dry run.
	Perf *PerfInput `json:"perf,omitempty"`
	// RequesterProof is the requester's signature over the start (see
	// StartClaim). Without it the requester is unverified: four-eyes then
	// asks every proceeding choice for at least two distinct approvers.
	RequesterProof *identity.Proof `json:"requester_proof,omitempty"`
	// FleetScope is set by a fleet on its children: RequesterProof then
	// signs the fleet's start (FleetStartClaim), not this child's.
	FleetScope *FleetScope `json:"fleet_scope,omitempty"`
}

// FleetScope is what a fleet's start proof covers: its targets. The fleet
// id is the child id without its "/<target>" suffix.
type FleetScope struct {
	Targets []string `json:"targets"`
}

// EnvironmentInput is one environment by name.
type EnvironmentInput struct {
	Name string `json:"name"`
	// MaintenanceWindow, when set, holds backup, apply and validation to the
	// window; constraints not validated when it closes continue in the next.
	MaintenanceWindow *MaintenanceWindow `json:"maintenance_window,omitempty"`
}

// MaintenanceWindow is a daily window.
type MaintenanceWindow struct {
	// Start is the local opening time, "02:00".
	Start string `json:"start"`
	// Duration is how long it stays open, "2h".
	Duration string `json:"duration"`
	// Timezone is an IANA name, "Asia/Jakarta" (default UTC).
	Timezone string `json:"timezone,omitempty"`
	// NotifyBefore sends a notification this long before it opens
	// (default 30m; "0s" disables).
	NotifyBefore string `json:"notify_before,omitempty"`
}

// ApprovalPolicy says who may decide which gate.
type ApprovalPolicy struct {
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

// Thresholds are the seeds' figures. The workflow reports them; the
// monitor (issue 5) evaluates them.
type Thresholds struct {
	// MaxOverheadMS is the acceptable latency overhead per operation (seeds: 10).
	MaxOverheadMS float64 `json:"max_overhead_ms,omitempty"`
	// RollbackOverheadMS rolls back above this degradation (seeds: 20).
	RollbackOverheadMS float64 `json:"rollback_overhead_ms,omitempty"`
	// ErrorRateIncreasePct rolls back above this error-rate increase (seeds: 5).
	ErrorRateIncreasePct float64 `json:"error_rate_increase_pct,omitempty"`
	// FKViolationsPerHour opens an investigate gate above this rate (seeds: 1).
	FKViolationsPerHour float64 `json:"fk_violations_per_hour,omitempty"`
}

// MonitorInput configures the watch after the last environment.
type MonitorInput struct {
	Enabled bool `json:"enabled"`
	// Duration of the watch, "24h".
	Duration string `json:"duration,omitempty"`
	// Interval between evaluations, "5m".
	Interval string `json:"interval,omitempty"`
	// Sources are the worker-configured monitor sources to watch with
	// (config monitor.sources); empty: every source of the environment.
	Sources []string `json:"sources,omitempty"`
	// InconclusiveLimit consecutive checks without data open a gate (default 3).
	InconclusiveLimit int `json:"inconclusive_limit,omitempty"`
	// Persist is how many consecutive breaches the latency and error-rate
	// rows need (default 3); SmokePersist the same for failing smoke
	// checks (default 2).
	Persist      int `json:"persist,omitempty"`
	SmokePersist int `json:"smoke_persist,omitempty"`
	// BaselinePeriod is how long the baseline is measured ("5m").
	BaselinePeriod string `json:"baseline_period,omitempty"`
	// Rules, when set, replace the seeds' decision matrix.
	Rules []monitor.Rule `json:"rules,omitempty"`
}

// Gate choices. The Slack integration uses the same identifiers.
const (
	ChoiceApprove    = "approve"
	ChoiceReject     = "reject"
	ChoiceDelete     = "delete"
	ChoiceSetNull    = "set-null"
	ChoiceAcceptDebt = "accept-debt"
	ChoiceReAudit    = "re-audit"
	ChoiceAbort      = "abort"
	ChoiceContinue   = "continue"
	ChoiceRollback   = "rollback"
	ChoiceRetry      = "retry"
	// ChoiceSkip skips the constraint a failed step was for (recorded as
	// debt or, when it was never added, as skipped).
	ChoiceSkip = "skip"
	// ChoiceDeleteWithDependents deletes orphans together with every row
	// that references them, all copied to quarantine, children first.
	ChoiceDeleteWithDependents = "delete-with-dependents"
)

// conservative choices stop, roll back or only re-read: one allowed person
// suffices, and the requester may choose them on their own rollout.
func conservative(choice string) bool {
	switch choice {
	case ChoiceReject, ChoiceAbort, ChoiceReAudit, ChoiceRollback, ChoiceRetry:
		return true
	}
	return false
}

// DecisionInput decides a gate (UpdateDecide, SignalDecide). The JSON shape
// matches internal/slackbot.Decision.
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
