package rollout

import (
	"time"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// RolloutState is the coarse state (search attribute RolloutStatus).
type RolloutState string

const (
	StateRunning           RolloutState = "running"
	StatePaused            RolloutState = "paused"
	StateWaitingForGate    RolloutState = "waiting-for-approval"
	StateWaitingForWindow  RolloutState = "waiting-for-window"
	StateCompleted         RolloutState = "completed"
	StateCompletedWithDebt RolloutState = "completed-with-debt"
	StateDryRunDone        RolloutState = "dry-run-completed"
	StateRejected          RolloutState = "rejected"
	StateAborted           RolloutState = "aborted"
	StateRolledBack        RolloutState = "rolled-back"
	StateFailed            RolloutState = "failed"
	// StateCancelled: the workflow was cancelled (Temporal's cancel); the
	// NOT VALID constraints this run created were dropped, validated ones
	// kept (Status.Rollback says which).
	StateCancelled RolloutState = "cancelled"
)

// States of a fleet and its targets (FKFleetRollout shows them with the
// rollout states and reports). A target is pending until its wave starts, running
// while its child runs and skipped when the fleet stopped before its wave;
// otherwise it takes its child's final state. The fleet itself ends
// completed-with-failures when some targets failed within the budget.
const (
	StatePending               RolloutState = "pending"
	StateSkipped               RolloutState = "skipped"
	StateCompletedWithFailures RolloutState = "completed-with-failures"
)

// Terminal reports whether the rollout has ended.
func (s RolloutState) Terminal() bool {
	switch s {
	case StateCompleted, StateCompletedWithDebt, StateDryRunDone, StateRejected, StateAborted, StateRolledBack, StateFailed, StateCancelled:
		return true
	}
	return false
}

// Phases, in the order an environment goes through them (RolloutPhase).
const (
	PhaseStarting    = "starting"
	PhaseParse       = "parse-plan"
	PhaseCheck       = "plan-check"
	PhaseStatsBefore = "stats-before"
	PhaseAudit       = "audit"
	PhaseWindow      = "maintenance-window"
	PhaseBackup      = "backup"
	PhaseApply       = "apply-not-valid"
	PhaseReaudit     = "re-audit"
	PhaseRemediation = "remediation"
	PhaseValidate    = "validate"
	PhaseBehaviour   = "behaviour-tests"
	PhaseStatsAfter  = "stats-after"
	PhaseDeployHooks = "deploy-hooks"
	PhaseSmoke       = "smoke-checks"
	PhasePromotion   = "promotion"
	PhaseMonitor     = "monitor"
	PhaseRollback    = "rollback"
	PhaseRehearsal   = "rollback-rehearsal"
	PhaseDone        = "done"
)

// ConstraintState is one constraint's progress in one environment.
type ConstraintState string

const (
	CPlanned    ConstraintState = "planned"
	CApplied    ConstraintState = "applied"
	CValidated  ConstraintState = "validated"
	CTested     ConstraintState = "tested"
	CRolledBack ConstraintState = "rolled-back"
	// CDebt: orphans accepted as technical debt; the constraint stays NOT
	// VALID and still guards every new write.
	CDebt ConstraintState = "debt"
	// CSkipped: a human skipped the constraint at a failure gate before it
	// was added; it does not exist in the environment.
	CSkipped ConstraintState = "skipped"
)

// Status is what the status query returns, and the workflow's result.
type Status struct {
	RolloutID   string       `json:"rollout_id"`
	Requester   string       `json:"requester"`
	DryRun      bool         `json:"dry_run,omitempty"`
	State       RolloutState `json:"state"`
	Phase       string       `json:"phase"`
	Environment string       `json:"environment,omitempty"`
	PlanName    string       `json:"plan_name,omitempty"`
	Paused      bool         `json:"paused,omitempty"`
	// Environments in rollout order.
	EnvironmentOrder []string             `json:"environment_order"`
	Constraints      []ConstraintStatus   `json:"constraints"`
	OpenGates        []approval.Gate      `json:"open_gates"`
	Gates            []approval.Gate      `json:"gates"`
	Decisions        []approval.Decision  `json:"decisions"`
	Refusals         []approval.Refusal   `json:"refusals,omitempty"`
	Environments     map[string]EnvReport `json:"environments"`
	Findings         []Finding            `json:"findings,omitempty"`
	Monitor          *MonitorResult       `json:"monitor,omitempty"`
	// Thresholds are the input's acceptance figures (the report's targets).
	Thresholds Thresholds `json:"thresholds"`
	// SafeguardsOff are the runbook safeguards this rollout's input turned
	// off (skip, allowed by the worker's policy.allow_skip).
	SafeguardsOff []string `json:"safeguards_off,omitempty"`
	// Phases is where the time went: one span per phase entered.
	Phases []PhaseSpan `json:"phases,omitempty"`
	// ReportPath is where the worker wrote the completion report.
	ReportPath string `json:"report_path,omitempty"`
	// Rollback is set when the rollout dropped its constraints.
	Rollback *RollbackRecord `json:"rollback,omitempty"`
	// Policy is the effective approval policy (absent in rollouts started
	// before the worker's policy existed).
	Policy *approval.PolicyView `json:"policy,omitempty"`
	// DroppedRefusals counts record-refusal signals without a valid proof.
	DroppedRefusals int `json:"dropped_refusals,omitempty"`
	// Thread is the rollout's Slack thread (gate blocks link into it).
	Thread   notify.MessageRef `json:"thread,omitempty"`
	Timeline []TimelineEntry   `json:"timeline"`
	// TimelineDropped counts the oldest entries dropped to bound the size.
	TimelineDropped int    `json:"timeline_dropped,omitempty"`
	Error           string `json:"error,omitempty"`
	// Totals count every constraint per environment and state; set in
	// the bounded copies the status query and the result are.
	Totals *Totals `json:"totals,omitempty"`
	// Truncated says what this copy leaves out (nil: nothing); the
	// constraints query pages through the rest.
	Truncated *Truncation `json:"truncated,omitempty"`
	StartedAt time.Time   `json:"started_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// ConstraintStatus is one planned constraint across environments.
type ConstraintStatus struct {
	Name         string                        `json:"name"`
	Table        string                        `json:"table"`
	References   string                        `json:"references"`
	Priority     string                        `json:"priority"`
	Environments map[string]ConstraintEnvState `json:"environments"`
}

// ConstraintEnvState is one constraint in one environment.
type ConstraintEnvState struct {
	State   ConstraintState `json:"state"`
	Orphans int64           `json:"orphans"`
	Detail  string          `json:"detail,omitempty"`
	Since   time.Time       `json:"since"`
}

// EnvReport is everything one environment produced.
type EnvReport struct {
	Name         string              `json:"name"`
	Phase        string              `json:"phase"`
	Done         bool                `json:"done"`
	Problems     []Problem           `json:"problems,omitempty"`
	StatsBefore  *StatsResult        `json:"stats_before,omitempty"`
	StatsAfter   *StatsResult        `json:"stats_after,omitempty"`
	FirstAudit   []AuditFigure       `json:"first_audit,omitempty"`
	LastAudit    []AuditFigure       `json:"last_audit,omitempty"`
	AuditRounds  int                 `json:"audit_rounds"`
	Backup       *BackupResult       `json:"backup,omitempty"`
	Applied      []ConstraintResult  `json:"applied,omitempty"`
	Validated    []ConstraintResult  `json:"validated,omitempty"`
	Remediations []RemediationResult `json:"remediations,omitempty"`
	Behaviour    []BehaviourResult   `json:"behaviour,omitempty"`
	Hooks        []HookResult        `json:"hooks,omitempty"`
	// RollbackHooks ran around this environment's rollback drop (or
	// its rehearsal).
	RollbackHooks []HookResult `json:"rollback_hooks,omitempty"`
	// Rehearsal is the rollback rehearsed here before the next
	// environment (Input.RehearseRollback).
	Rehearsal *RehearsalReport `json:"rehearsal,omitempty"`
	Smoke     []SmokeResult    `json:"smoke,omitempty"`
	// SmokeRounds counts every run of the smoke checks (retries too).
	SmokeRounds []SmokeRound `json:"smoke_rounds,omitempty"`
	// Expectations are the expected figures as last measured.
	Expectations []ExpectationResult `json:"expectations,omitempty"`
	// OrphanExports are the files listing every orphan row, per audit
	// round that opened the remediation gate (paths on the worker host).
	OrphanExports []OrphanExport     `json:"orphan_exports,omitempty"`
	RolledBack    []ConstraintResult `json:"rolled_back,omitempty"`
	// Failures are the steps that failed in this environment, by phase
	// (the phase table shows such a phase as failed or partial).
	Failures []PhaseFailure `json:"failures,omitempty"`
	// Quarantine is this run's quarantined rows per table (counted when
	// the environment finished or the rollout stopped).
	Quarantine *QuarantineResult `json:"quarantine,omitempty"`
	// Restored is what a rollback put back from quarantine.
	Restored *QuarantineResult `json:"restored,omitempty"`
	// Perf is the perf phase's result in the environment it measured.
	Perf *PerfReport `json:"perf,omitempty"`
	// Window is the maintenance window currently waited for or used.
	WindowOpens  *time.Time `json:"window_opens,omitempty"`
	WindowCloses *time.Time `json:"window_closes,omitempty"`
	// WindowZone is the window's IANA zone: JSON keeps only the offset.
	WindowZone string `json:"window_zone,omitempty"`
}

// PhaseFailure is one failed step of a phase.
type PhaseFailure struct {
	Phase string `json:"phase"`
	What  string `json:"what"`
	// Outcome is what the failure gate decided: retry, skip, rollback,
	// abort (empty while undecided).
	Outcome string `json:"outcome,omitempty"`
}

// PhaseSpan is one stretch of time spent in a phase; Ended is zero while
// the rollout is still in it.
type PhaseSpan struct {
	Environment string    `json:"environment,omitempty"`
	Phase       string    `json:"phase"`
	Started     time.Time `json:"started"`
	Ended       time.Time `json:"ended,omitempty"`
}

// RollbackRecord says why and what the rollout rolled back.
type RollbackRecord struct {
	// Trigger: monitor, perf, rollback (the manual update), abort.
	Trigger string `json:"trigger"`
	// Rule is the decision-matrix row that fired (monitor), or the
	// human-readable cause.
	Rule    string          `json:"rule"`
	Actor   string          `json:"actor"`
	Reason  string          `json:"reason,omitempty"`
	At      time.Time       `json:"at"`
	Figures []notify.Figure `json:"figures,omitempty"`
	// Dropped are "<environment>:<constraint>" pairs.
	Dropped []string `json:"dropped,omitempty"`
	// Failures are environments whose rollback did not complete.
	Failures []string `json:"failures,omitempty"`
	// Kept are "<environment>:<constraint>" pairs a cancellation left in
	// place because they were already validated.
	Kept []string `json:"kept,omitempty"`
	// Left is set when a human chose at the rollback gate to stop retrying
	// and leave the remaining constraints in place: who, and why.
	Left *LeftRecord `json:"left,omitempty"`
}

// LeftRecord is the decision to leave constraints a failed rollback could
// not drop.
type LeftRecord struct {
	Actor  string    `json:"actor"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// maxPhases bounds Status.Phases (remediation loops re-enter phases).
const maxPhases = 200

// TimelineEntry is one line of the run's timeline.
type TimelineEntry struct {
	Time        time.Time `json:"time"`
	Environment string    `json:"environment,omitempty"`
	Phase       string    `json:"phase,omitempty"`
	Message     string    `json:"message"`
}

// maxTimeline bounds the status size (and so the query and result size).
const maxTimeline = 300

// OpenGateIDs lists the open gates' IDs.
func (s *Status) OpenGateIDs() []string {
	ids := make([]string, 0, len(s.OpenGates))
	for _, g := range s.OpenGates {
		ids = append(ids, g.ID)
	}
	return ids
}

// Counts returns, per environment, how many constraints are in each state
// (from the totals in a bounded copy, which lists only some constraints).
func (s *Status) Counts(env string) map[ConstraintState]int {
	m := map[ConstraintState]int{}
	if s.Totals != nil {
		//workflowcheck:ignore (a copy: order-free)
		for k, v := range s.Totals.Counts[env] {
			m[k] = v
		}
		return m
	}
	for _, c := range s.Constraints {
		if st, ok := c.Environments[env]; ok {
			m[st.State]++
		}
	}
	return m
}
