package watch

// The contract of FKRolloutMonitor and FKHealthCheck: names, activities,
// requests and outcomes.

import (
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
)

// Registered names.
const (
	WorkflowName            = "FKRolloutMonitor"
	HealthCheckWorkflowName = "FKHealthCheck"

	ActMonitorCaptureBaseline = "MonitorCaptureBaseline"
	ActMonitorWatch           = "MonitorWatch"
	ActHealthCheck            = "HealthCheck"
)

// ActivityNames lists the activities the monitor and health check
// workflows schedule.
func ActivityNames() []string {
	return []string{ActMonitorCaptureBaseline, ActMonitorWatch, ActHealthCheck}
}

// Monitor outcome statuses.
const (
	// OutcomeClean: the window ended and no row fired.
	OutcomeClean = "clean"
	// OutcomeRollback: a rollback row fired; the parent drops the
	// rollout's constraints.
	OutcomeRollback = "rollback"
	// OutcomeInvestigate: an investigate row fired; the parent opens
	// an investigate gate (continue → resume the watch, rollback → roll back).
	OutcomeInvestigate = "investigate"
	// OutcomeInconclusive: data missing for InconclusiveLimit checks,
	// or the watcher itself failed; the parent opens a gate. Never a pass.
	OutcomeInconclusive = "inconclusive"
)

// Config is how the watch runs: the rollout maps its input's monitor
// section onto it (rollout.MonitorInput).
type Config struct {
	// Sources are worker-configured monitor source names (monitor.Config);
	// empty: every source configured for the environment. A worker with
	// none fails the watcher with a ConfigError, which the workflow reports
	// as inconclusive (a gate), never as a pass.
	Sources []string `json:"sources,omitempty"`
	// Rules replace the default decision matrix when set.
	Rules []monitor.Rule `json:"rules,omitempty"`
	// Persist and SmokePersist tune the default matrix (defaults 3 and 2).
	Persist      int `json:"persist,omitempty"`
	SmokePersist int `json:"smoke_persist,omitempty"`
	// InconclusiveLimit consecutive checks without data open a gate (default 3).
	InconclusiveLimit int `json:"inconclusive_limit,omitempty"`
	// BaselinePeriod is how long the baseline is measured ("5m").
	BaselinePeriod string `json:"baseline_period,omitempty"`
}

// Request starts (or resumes) a watch.
type Request struct {
	RolloutID   string             `json:"rollout_id"`
	Environment string             `json:"environment"`
	Tables      []plan.TableName   `json:"tables,omitempty"`
	Duration    string             `json:"duration,omitempty"` // default "24h"
	Interval    string             `json:"interval,omitempty"` // default "5m"
	Thresholds  monitor.Thresholds `json:"thresholds"`
	Config      Config             `json:"config"`
	// Deadline, when set, is the absolute end of the watch (a resumed
	// watch keeps the original end); otherwise start + Duration.
	Deadline time.Time `json:"deadline,omitempty"`
	// Baseline, when set, is reused (resume, or captured before the deploy
	// by the parent); otherwise the child captures one first.
	Baseline *monitor.Baseline `json:"baseline,omitempty"`
	// State carries the evaluator's counters into a resumed watch.
	State *monitor.State `json:"state,omitempty"`
	// Progress carries the watcher's position (counters, source cursors,
	// last check) into a resumed watch, so a cumulative source does not
	// re-prime and lose the interval between two runs.
	Progress *monitor.Progress `json:"progress,omitempty"`
	// ReportTo, when set, is the workflow (the parent rollout) that gets a
	// SignalRules report at every checkpoint: each rule's source, last
	// figure and state.
	ReportTo string `json:"report_to,omitempty"`
	// Thread is the rollout's Slack thread; the daily digest goes there.
	Thread notify.MessageRef `json:"thread"`
	// WatchStarted is when the whole watch began (resumed runs included):
	// digest n is due at WatchStarted + n days. Digests is how many were
	// posted already, so a resumed watch never posts a day twice.
	WatchStarted time.Time `json:"watch_started,omitempty"`
	Digests      int       `json:"digests,omitempty"`
	// Hold names the investigate rules (and monitor.HoldInconclusive) whose
	// gate is open in the parent: evaluated and reported, they do not end
	// the watch again. SignalRelease lifts the hold when the gate closes.
	Hold []string `json:"hold,omitempty"`
}

// SignalRelease tells a watch that the gate behind its Hold was decided
// "continue": what the held rules counted meanwhile is forgotten and they
// fire again on what happens next.
const SignalRelease = "monitor-release"

// HeldReportEvery is how often a watch with held rules reports, so a
// release takes effect within it.
const HeldReportEvery = 15 * time.Minute

// SignalRules is the signal a watch sends to Request.ReportTo at each
// checkpoint, with a RulesReport.
const SignalRules = "monitor-rules"

// RulesReport is every rule's state at a checkpoint of the watch.
type RulesReport struct {
	// Run names the monitor child (its workflow id).
	Run    string               `json:"run"`
	At     time.Time            `json:"at"`
	Checks int                  `json:"checks"`
	Rules  []monitor.RuleStatus `json:"rules"`
}

// DefaultReportEvery is how often a watch reports every rule's figures
// when nothing changes state.
const DefaultReportEvery = time.Hour

// DigestEvery is the period of the watch's digest in the rollout's thread.
const DigestEvery = 24 * time.Hour

// Outcome is what the watch decided.
type Outcome struct {
	Status string `json:"status"`
	// Rule that fired, when it fired (At), its figures, and why.
	Rule    string             `json:"rule,omitempty"`
	At      time.Time          `json:"at,omitempty"`
	Figures map[string]float64 `json:"figures,omitempty"`
	// NotifyFigures are the same figures for notify.RollbackInfo /
	// notify.InvestigateData / MonitorResult.Figures.
	NotifyFigures []notify.Figure   `json:"notify_figures,omitempty"`
	Reason        string            `json:"reason"`
	Missing       map[string]string `json:"missing,omitempty"`
	// Uncovered lists matrix rows no chosen source measures.
	Uncovered []string `json:"uncovered,omitempty"`
	// Rules is every rule's state at the last check.
	Rules []monitor.RuleStatus `json:"rules,omitempty"`
	// Resume material: pass back in Request to continue the watch.
	Baseline *monitor.Baseline `json:"baseline,omitempty"`
	State    monitor.State     `json:"state"`
	Progress *monitor.Progress `json:"progress,omitempty"`
	Digests  int               `json:"digests,omitempty"`
	Deadline time.Time         `json:"deadline"`
	Started  time.Time         `json:"started"`
	Ended    time.Time         `json:"ended"`
}

// Resume returns the request that continues the watch after a
// human chose "continue" at an investigate or inconclusive gate: same
// deadline, same baseline, counters carried.
func (o Outcome) Resume(prev Request) Request {
	next := prev
	next.Deadline = o.Deadline
	next.Baseline = o.Baseline
	st := o.State
	next.State = &st
	if o.Progress != nil {
		p := *o.Progress
		p.State = st
		next.Progress = &p
	}
	next.Digests = max(next.Digests, o.Digests)
	return next
}

// BaselineInput asks the worker for a baseline.
type BaselineInput struct {
	RolloutID   string           `json:"rollout_id"`
	Environment string           `json:"environment"`
	Sources     []string         `json:"sources"`
	Tables      []plan.TableName `json:"tables,omitempty"`
	Period      string           `json:"period"`
}

// WatchInput runs the watcher until a decision or the deadline.
type WatchInput struct {
	RolloutID   string            `json:"rollout_id"`
	Environment string            `json:"environment"`
	Sources     []string          `json:"sources"`
	Tables      []plan.TableName  `json:"tables,omitempty"`
	Interval    string            `json:"interval"`
	Deadline    time.Time         `json:"deadline"`
	Evaluator   monitor.Evaluator `json:"evaluator"`
	Baseline    monitor.Baseline  `json:"baseline"`
	State       monitor.State     `json:"state"`
	// Progress, when set, is where to resume (cursors included); a
	// heartbeat of a retried attempt wins over it.
	Progress *monitor.Progress `json:"progress,omitempty"`
	// ReportEvery ("1h") and ReportOnChange make the watcher return
	// checkpoints (monitor.Watch); empty and false: it returns only a
	// decision or at the deadline.
	ReportEvery    string `json:"report_every,omitempty"`
	ReportOnChange bool   `json:"report_on_change,omitempty"`
}

// WatchResult is the watcher's last decision: not "continue", or
// "continue" with DeadlineReached.
type WatchResult = monitor.WatchResult

// SourcesText names the sources a watch reads, for messages.
func SourcesText(names []string) string {
	if len(names) == 0 {
		return "the environment's sources"
	}
	return strings.Join(names, ", ")
}

// HealthCheckInput is the monthly FK health check.
type HealthCheckInput struct {
	// Environments to audit (worker environment names).
	Environments []string `json:"environments"`
	// Schemas (default: every user schema).
	Schemas []string `json:"schemas,omitempty"`
	// StatementTimeout per orphan count ("10m"; default none).
	StatementTimeout string `json:"statement_timeout,omitempty"`
	// ReviewPeriod is how far back the constraint-violation review reads
	// the server log ("720h", the default: the month since the last check).
	ReviewPeriod string `json:"review_period,omitempty"`
}

// DefaultReviewPeriod is the monthly check's violation review period.
const DefaultReviewPeriod = 30 * 24 * time.Hour

// HealthEnvInput audits one environment.
type HealthEnvInput struct {
	Environment      string   `json:"environment"`
	Schemas          []string `json:"schemas,omitempty"`
	StatementTimeout string   `json:"statement_timeout,omitempty"`
	// ReviewSince, when set, reviews the FK violations logged since then.
	ReviewSince time.Time `json:"review_since,omitzero"`
}

// HealthReport is one environment's health.
type HealthReport struct {
	Environment string             `json:"environment"`
	TakenAt     time.Time          `json:"taken_at"`
	ForeignKeys int                `json:"foreign_keys"`
	Validated   int                `json:"validated"`
	NotValid    []string           `json:"not_valid,omitempty"`
	WithOrphans []string           `json:"with_orphans,omitempty"`
	Failed      []string           `json:"failed,omitempty"`
	FKs         []monitor.HealthFK `json:"fks"`
	Healthy     bool               `json:"healthy"`
	// Violations is the constraint-violation review of the period.
	Violations *monitor.ViolationReview `json:"violations,omitempty"`
}

// HealthCheckResult is the whole check.
type HealthCheckResult struct {
	Reports []HealthReport `json:"reports"`
	Healthy bool           `json:"healthy"`
	Summary string         `json:"summary"`
}
