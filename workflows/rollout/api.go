// Package rollout is the durable rollout (FKRollout): orphan audit, NOT
// VALID constraints, remediation, validation, behaviour tests, the perf
// comparison, production in its maintenance window and the watch after it,
// environment by environment. It pauses for people at gates (package
// approval), waits for maintenance windows, survives worker restarts and
// reports what it is doing at every moment.
//
// This file is the public contract: names of the workflow and its queries,
// the input a release owner pastes into the Temporal UI, and the search
// attributes. The decide and control payloads are package approval's.
package rollout

import (
	"encoding/json"
	"reflect"

	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/jsonkeys"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/workflows/approval"
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
)

// HandlerDescription is what the Temporal UI's Queries and Updates menus
// show next to each handler name.
func HandlerDescription(name string) string {
	return handlerDescriptions()[name]
}

func handlerDescriptions() map[string]string {
	return map[string]string{
		QueryStatus: "Where the rollout is: phase, environment, state, open gates (who may decide, votes, deadline), progress per environment, decisions, timeline (JSON; counts complete, lists bounded: see truncated and the constraints query)",
		QueryReport: "The completion report (markdown), so far while running",
		QueryConstraints: "A page of constraints with their state and last audit per environment (the status lists the first 100). " +
			`Input: {"offset":0,"limit":200,"environment":"production","state":"debt"} (all optional)`,
		approval.UpdateDecide: "Decide an open gate; the answer says whether it was decided or how many approvals it still needs. " +
			`Input: {"gate_id":"production/promotion/2","choice":"approve","actor":"you@example.com","reason":"why","via":"ui"} (current details show the open gate's payload)`,
		approval.UpdatePause:    `Hold the rollout before its next step. Input: {"actor":"you@example.com","reason":"why"}`,
		approval.UpdateResume:   `Release a paused rollout. Input: {"actor":"you@example.com"}`,
		approval.UpdateAbort:    `Stop the rollout; applied constraints stay ("rollback":true drops them first). Input: {"actor":"you@example.com","reason":"why"}`,
		approval.UpdateRollback: `Drop every constraint this rollout created and end it as rolled back; reason required. Input: {"actor":"you@example.com","reason":"why"}`,
	}
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
func SearchAttributeNames() []string {
	return []string{"RolloutPhase", "RolloutEnvironment", "RolloutStatus", "Requester"}
}

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
	Approval approval.Policy `json:"approval"`
	// Thresholds are the acceptance figures (used by the promotion
	// summary and the monitor).
	Thresholds Thresholds `json:"thresholds"`
	// Monitor is the watch after production validation.
	Monitor MonitorInput `json:"monitor"`
	// DryRun runs checks, statistics and the audit only; nothing changes.
	DryRun bool `json:"dry_run,omitempty"`
	// Skip turns runbook safeguards off: "perf", "monitor", "window",
	// "full_backup" (policy.Safeguards). Each one listed must be allowed
	// by the worker's policy.allow_skip, or the rollout is refused before
	// anything runs. Empty: every safeguard runs (perf phase on the first
	// environment, a watch of at least policy.min_watch, a maintenance
	// window and a full backup for the last environment).
	Skip []string `json:"skip,omitempty"`
	// RehearseRollback rehearses the rollback in the first environment
	// once it is done: this rollout's constraints are dropped (with the
	// rollback hooks), added again and validated, before the promotion
	// to the next. The worker's policy.rehearse_rollback asks it of
	// every rollout.
	RehearseRollback bool `json:"rehearse_rollback,omitempty"`
	// Perf configures the perf phase (baseline vs with-FKs workload on
	// staging); see PerfInput. It runs unless skip lists "perf" (rollouts
	// started before skip existed: only when perf.enabled). Skipped in a
	// dry run.
	Perf *PerfInput `json:"perf,omitempty"`
	// RequesterProof is the requester's signature over the start (see
	// StartClaim). Without it the requester is unverified: four-eyes then
	// asks every proceeding choice for at least two distinct approvers.
	RequesterProof *identity.Proof `json:"requester_proof,omitempty"`
	// FleetScope is set by a fleet on its children: RequesterProof then
	// signs the fleet's start (FleetStartClaim), not this child's.
	FleetScope *FleetScope `json:"fleet_scope,omitempty"`

	// unknown are keys of the JSON this input was decoded from that no
	// field takes (a misspelled "dryrun"); the workflow refuses them.
	unknown []jsonkeys.Key
}

// UnmarshalJSON decodes an input as encoding/json does and remembers the
// keys no field takes, so a misspelling is refused instead of meaning the
// default (see UnknownKeys).
func (in *Input) UnmarshalJSON(b []byte) error {
	type plain Input // without this method
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*in = Input(p)
	in.unknown = jsonkeys.Unknown(b, reflect.TypeFor[Input]())
	return nil
}

// UnknownKeys are the keys of the decoded JSON that no field takes, each
// with the field it probably meant.
func (in Input) UnknownKeys() []jsonkeys.Key { return in.unknown }

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

// Thresholds are the acceptance figures (README "Production monitor").
// The workflow reports them; the production watch evaluates them.
type Thresholds struct {
	// MaxOverheadMS is the acceptable latency overhead per operation (default 10).
	MaxOverheadMS float64 `json:"max_overhead_ms,omitempty"`
	// RollbackOverheadMS rolls back above this degradation (default 20).
	RollbackOverheadMS float64 `json:"rollback_overhead_ms,omitempty"`
	// ErrorRateIncreasePct rolls back above this error-rate increase in
	// percentage points (default 5: 1 % → above 6 %).
	ErrorRateIncreasePct float64 `json:"error_rate_increase_pct,omitempty"`
	// ErrorRateIncreaseRatio, when set, also rolls back above this error-rate
	// increase relative to the baseline (0.05: 1 % → above 1.05 %).
	ErrorRateIncreaseRatio float64 `json:"error_rate_increase_ratio,omitempty"`
	// LatencyIncreasePct, when set, also rolls back above this latency
	// increase relative to the baseline, in percent (30: 30 % slower).
	LatencyIncreasePct float64 `json:"latency_increase_pct,omitempty"`
	// FKViolationsPerHour opens an investigate gate above this rate (default 1).
	FKViolationsPerHour float64 `json:"fk_violations_per_hour,omitempty"`
}

// MonitorInput configures the watch after the last environment.
type MonitorInput struct {
	// Enabled turns the watch on in rollouts and fleets started before
	// Input.Skip existed. Now the watch runs unless skip lists "monitor"
	// (the workflow sets Enabled from that), in a fleet's children too.
	Enabled bool `json:"enabled"`
	// Duration of the watch, "24h" (default; at least the worker's
	// policy.min_watch).
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
	// BaselineAt is when the baseline of the last environment is measured:
	// "deploy" (default), just before the deploy, inside the maintenance
	// window; "before-window", when the rollout reaches that environment,
	// before it waits for the window, at the day's load the watch will
	// see. A prometheus source with baseline_days compares each check with
	// the same time on previous days either way.
	BaselineAt string `json:"baseline_at,omitempty"`
	// Rules, when set, replace the default decision matrix.
	Rules []monitor.Rule `json:"rules,omitempty"`
	// InvestigateTimeout is how long a gate the watch opens (investigate,
	// inconclusive) waits for a person when the approval policy gives it
	// no timeout (default "4h"); then it rolls back. The watch goes on
	// meanwhile.
	InvestigateTimeout string `json:"investigate_timeout,omitempty"`
}
