// Package notify is the seam between the rollout workflow and whoever tells
// people about it (Slack, a log). The workflow builds an Event at each
// transition and hands it to the Notify activity; the activity passes it to
// a Notifier chosen by the worker's configuration.
//
// Events travel through Temporal history, so they are plain JSON structs and
// never carry a secret. The JSON shape matches internal/slackbot.Event field
// for field, so the Slack notifier can consume an Event as it is.
package notify

import (
	"context"
	"log/slog"
	"time"
)

// Kind says what happened to a rollout.
type Kind string

const (
	KindStarted     Kind = "started"
	KindPhase       Kind = "phase"
	KindGateOpened  Kind = "gate-opened"
	KindGateDecided Kind = "gate-decided"
	KindRolledBack  Kind = "rolled-back"
	KindCompleted   Kind = "completed"
	KindFailed      Kind = "failed"
	// KindReport carries the completion report (Event.Report, markdown)
	// when a rollout ends.
	KindReport Kind = "report"
)

// GateKind is the kind of human decision a gate asks for.
type GateKind string

const (
	GateRemediation GateKind = "remediation"
	GatePromotion   GateKind = "promotion"
	GateInvestigate GateKind = "investigate"
	// GateApproval is a plain approve/reject gate (deploy hook or smoke
	// check failure, maintenance window overrun) with free-form summary text.
	GateApproval GateKind = "approval"
)

// MessageRef points at a posted message (Slack: channel + ts). The workflow
// keeps the refs a Notifier returns and hands them back in later events, so
// notifiers hold no per-rollout state.
type MessageRef struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// IsZero reports whether the ref points nowhere.
func (m MessageRef) IsZero() bool { return m.Channel == "" || m.TS == "" }

// Event is one notification about a rollout.
type Event struct {
	RolloutID   string `json:"rollout_id"`
	Kind        Kind   `json:"kind"`
	Environment string `json:"environment,omitempty"`
	Phase       string `json:"phase,omitempty"`
	// Text is a short human line (phase changes, completion, failure).
	Text string `json:"text,omitempty"`
	// UILink is the Temporal UI URL of the rollout; filled in by the Notify
	// activity from the worker's configuration when empty.
	UILink string `json:"ui_link,omitempty"`
	// Thread is the ref returned for the KindStarted event.
	Thread MessageRef `json:"thread"`
	// Message is the gate message to update in place (KindGateDecided).
	Message MessageRef `json:"message"`

	Start    *StartInfo    `json:"start,omitempty"`
	Gate     *Gate         `json:"gate,omitempty"`
	Decision *Decision     `json:"decision,omitempty"`
	Rollback *RollbackInfo `json:"rollback,omitempty"`
	// Report is the completion report's markdown (KindReport).
	Report string    `json:"report,omitempty"`
	Time   time.Time `json:"time"`
}

// StartInfo is shown when a rollout starts.
type StartInfo struct {
	PlanSummary  string   `json:"plan_summary"`
	Constraints  int      `json:"constraints"`
	Environments []string `json:"environments"`
	Requester    string   `json:"requester"`
	DryRun       bool     `json:"dry_run,omitempty"`
}

// Gate is an open decision with what the approver needs to decide it.
type Gate struct {
	ID      string   `json:"id"`
	Kind    GateKind `json:"kind"`
	Title   string   `json:"title,omitempty"`
	Summary string   `json:"summary,omitempty"`
	Choices []Choice `json:"choices,omitempty"`
	// Block is how to decide the gate, as the CLI status shows it (who,
	// votes, deadline, the decide Update payload, the CLI command): one
	// renderer, workflows.Status.GateBlock, for every client.
	Block string `json:"block,omitempty"`
	// Approvers are who may decide it: identities and "role:<name>"
	// (empty: anyone). The Slack message mentions them.
	Approvers []string `json:"approvers,omitempty"`

	Remediation *RemediationData `json:"remediation,omitempty"`
	Promotion   *PromotionData   `json:"promotion,omitempty"`
	Investigate *InvestigateData `json:"investigate,omitempty"`
}

// Choice is one option of a gate.
type Choice struct {
	ID          string `json:"id"`
	Label       string `json:"label"`
	Style       string `json:"style,omitempty"`
	Confirm     string `json:"confirm,omitempty"`
	NeedsReason bool   `json:"needs_reason,omitempty"`
}

// RemediationData lists the orphans found per foreign key.
type RemediationData struct {
	FKs []OrphanReport `json:"fks"`
}

// OrphanReport is the audit result of one foreign key.
type OrphanReport struct {
	Constraint string   `json:"constraint"`
	Table      string   `json:"table"`
	Columns    []string `json:"columns"`
	RefTable   string   `json:"ref_table"`
	Orphans    int64    `json:"orphans"`
	Samples    []string `json:"samples,omitempty"`
	// Export is where the worker wrote every orphan row (a path on its
	// host, with the row count); empty when no file was written.
	Export   string `json:"export,omitempty"`
	Nullable bool   `json:"nullable"`
	// Dependents is the remediation impact: rows in other tables that
	// deleting the orphans would block, delete or change.
	Dependents []ImpactRow `json:"dependents,omitempty"`
	// Triggers are user triggers on the tables involved.
	Triggers []string `json:"triggers,omitempty"`
	// Impossible maps a choice that cannot be carried out to the reason.
	Impossible map[string]string `json:"impossible,omitempty"`
}

// ImpactRow is one table reached through one constraint.
type ImpactRow struct {
	Table      string `json:"table"`
	Constraint string `json:"constraint"`
	Action     string `json:"action"`
	Rows       int64  `json:"rows"`
	Depth      int    `json:"depth"`
}

// PromotionData is what one environment proved before the next.
type PromotionData struct {
	From      string       `json:"from"`
	To        string       `json:"to"`
	Validated []string     `json:"validated"`
	NotValid  []string     `json:"not_valid,omitempty"`
	Tests     []TestResult `json:"tests"`
	Perf      []PerfRow    `json:"perf"`
	Warnings  []string     `json:"warnings,omitempty"`
}

// TestResult is one behaviour test outcome.
type TestResult struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// PerfRow is one line of the perf phase's table (Operation | Baseline |
// With FKs | Overhead | Status).
type PerfRow struct {
	Operation  string  `json:"operation"`
	BaselineMS float64 `json:"baseline_ms"`
	WithFKsMS  float64 `json:"with_fks_ms"`
	Acceptable bool    `json:"acceptable"`
	// Verdict and Overhead (with its confidence interval, "+1.2ms
	// [-0.3ms, +2.8ms]") come from the interleaved comparison.
	Verdict  string `json:"verdict,omitempty"`
	Overhead string `json:"overhead,omitempty"`
}

// InvestigateData is what breached during monitoring.
type InvestigateData struct {
	Rule    string   `json:"rule"`
	Figures []Figure `json:"figures"`
}

// Figure is one measured value against its threshold.
type Figure struct {
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Unit      string  `json:"unit,omitempty"`
}

// Decision is a recorded gate decision.
type Decision struct {
	Actor     string    `json:"actor"`
	Choice    string    `json:"choice"`
	Reason    string    `json:"reason,omitempty"`
	Time      time.Time `json:"time"`
	SlackUser string    `json:"slack_user,omitempty"`
	// Via is "slack", "cli", "ui", "signal", "timeout"...
	Via string `json:"via,omitempty"`
}

// RollbackInfo says why and what was rolled back.
type RollbackInfo struct {
	Rule        string   `json:"rule"`
	Figures     []Figure `json:"figures,omitempty"`
	Constraints []string `json:"constraints,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Manual      bool     `json:"manual,omitempty"`
	Actor       string   `json:"actor,omitempty"`
}

// Receipt identifies what a Notifier posted (zero when nothing was posted).
type Receipt struct {
	Ref MessageRef `json:"ref"`
}

// Notifier delivers events. Implementations must be safe for concurrent use
// and must not block a rollout's safety actions: the workflow calls Notify
// after, never before, a rollback.
type Notifier interface {
	Notify(ctx context.Context, ev Event) (Receipt, error)
}

// LogNotifier writes events to a structured log: the notifier when Slack is
// not configured, so every transition is still visible to operators.
type LogNotifier struct {
	Log *slog.Logger
}

// Notify logs the event and posts nothing.
func (n LogNotifier) Notify(ctx context.Context, ev Event) (Receipt, error) {
	l := n.Log
	if l == nil {
		l = slog.Default()
	}
	attrs := []any{"rollout_id", ev.RolloutID, "kind", string(ev.Kind), "environment", ev.Environment, "phase", ev.Phase}
	if ev.Gate != nil {
		attrs = append(attrs, "gate", ev.Gate.ID, "gate_kind", string(ev.Gate.Kind))
	}
	if ev.Decision != nil {
		attrs = append(attrs, "actor", ev.Decision.Actor, "choice", ev.Decision.Choice, "reason", ev.Decision.Reason)
	}
	if ev.UILink != "" {
		attrs = append(attrs, "ui", ev.UILink)
	}
	l.InfoContext(ctx, "rollout event: "+ev.Text, attrs...)
	return Receipt{}, nil
}
