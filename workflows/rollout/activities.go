package rollout

import (
	"encoding/json"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
)

// Activity names: Act + the name the worker registers the activity under.
// The workflow schedules activities by name, not by method value, so it
// links none of the engine's drivers (go test ./internal/archtest checks
// it); results cross the boundary as the small structs below, which also
// keeps recorded histories replayable when an engine struct grows a field.
const (
	ActParsePlan          = "ParsePlan"
	ActCheckPlan          = "CheckPlan"
	ActTakeStats          = "TakeStats"
	ActAudit              = "Audit"
	ActBackup             = "Backup"
	ActApplyConstraint    = "ApplyConstraint"
	ActRemediate          = "Remediate"
	ActValidateConstraint = "ValidateConstraint"
	ActRunBehaviourTests  = "RunBehaviourTests"
	ActRollback           = "Rollback"
	ActVerify             = "Verify"
	ActRunDeployHooks     = "RunDeployHooks"
	ActRunSmokeChecks     = "RunSmokeChecks"
	// ActPublishReport writes the completion report to the worker's
	// report directory and posts it through the notifier.
	ActPublishReport = "PublishReport"
	// ActRemediationImpact computes what remediating one constraint's orphans would
	// do across the foreign-key graph, before anyone decides.
	ActRemediationImpact = "RemediationImpact"
	// ActQuarantine counts (and on rollback restores) the rows this run's
	// remediation copied to quarantine.
	ActQuarantine = "Quarantine"
	// ActCheckExpectations measures the figures the plan and the worker's
	// configuration expect of an environment and compares them.
	ActCheckExpectations = "CheckExpectations"
	// ActExportOrphans writes every orphan row of the given constraints to
	// files on the worker host, for the people who decide at the gate.
	ActExportOrphans = "ExportOrphans"
)

// ActivityNames lists every activity FKRollout schedules besides Notify
// (the worker test checks each is registered).
func ActivityNames() []string {
	return []string{ActParsePlan, ActCheckPlan, ActTakeStats, ActAudit, ActBackup, ActApplyConstraint,
		ActRemediate, ActValidateConstraint, ActRunBehaviourTests, ActRollback, ActVerify, ActRunDeployHooks, ActRunSmokeChecks, ActPublishReport,
		ActRemediationImpact, ActQuarantine, ActResolvePolicy, ActPerfRun, ActPerfExplain, ActPerfInterleave, ActCheckExpectations, ActExportOrphans}
}

// ParsePlanInput is the plan text from the workflow input.
type ParsePlanInput struct {
	Text string `json:"text"`
	// Format is "sql", "yaml", "json" or empty (recognised from the text).
	Format string `json:"format,omitempty"`
	// Environment, when set, resolves implicit referenced columns
	// (REFERENCES t without a column list) to t's primary key in its
	// catalog, so every later step works with explicit columns.
	Environment string `json:"environment,omitempty"`
}

// ParsePlanResult is the parsed, validated plan and its lint findings.
type ParsePlanResult struct {
	Plan     plan.Plan `json:"plan"`
	Findings []Finding `json:"findings,omitempty"`
}

// Finding is one lint finding (plan.Finding).
type Finding struct {
	Severity string `json:"severity"`
	FK       string `json:"fk,omitempty"`
	Line     int    `json:"line,omitempty"`
	Rule     string `json:"rule"`
	Message  string `json:"message"`
}

// EnvInput addresses one environment by name; the worker maps it to a DSN.
type EnvInput struct {
	Environment string    `json:"environment"`
	RolloutID   string    `json:"rollout_id"`
	RunID       string    `json:"run_id,omitempty"`
	Plan        plan.Plan `json:"plan"`
}

// CheckResult is the plan checked against one database's catalog.
type CheckResult struct {
	Problems []Problem `json:"problems,omitempty"`
	// States by constraint name: what the catalog already holds
	// ("missing", "not_valid", "validated", ...).
	States map[string]string `json:"states,omitempty"`
}

// Problem is one catalog problem.
type Problem struct {
	FK      string `json:"fk,omitempty"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// StatsInput asks for a snapshot; with Before set, the result also
// compares against it.
type StatsInput struct {
	Environment string          `json:"environment"`
	Plan        plan.Plan       `json:"plan"`
	Before      json.RawMessage `json:"before,omitempty"`
}

// StatsResult is a catalog snapshot (opaque to the workflow, passed back as
// StatsInput.Before) with the figures the status shows.
type StatsResult struct {
	Snapshot             json.RawMessage `json:"snapshot"`
	TakenAt              time.Time       `json:"taken_at"`
	ForeignKeys          int             `json:"foreign_keys"`
	ForeignKeysValidated int             `json:"foreign_keys_validated"`
	ForeignKeysNotValid  int             `json:"foreign_keys_not_valid"`
	Comparison           []StatRow       `json:"comparison,omitempty"`
	// Unindexed lists FK columns without a supporting index (advice).
	Unindexed []string `json:"unindexed,omitempty"`
}

// StatRow is one before/after line.
type StatRow struct {
	Metric string `json:"metric"`
	Before string `json:"before"`
	After  string `json:"after"`
	Change string `json:"change"`
}

// AuditInput audits the given constraints.
type AuditInput struct {
	Environment string            `json:"environment"`
	FKs         []plan.ForeignKey `json:"fks"`
}

// AuditFigure is one constraint's orphan count with samples.
type AuditFigure struct {
	FK         string   `json:"fk"`
	Table      string   `json:"table"`
	References string   `json:"references"`
	Columns    []string `json:"columns,omitempty"`
	Nullable   bool     `json:"nullable,omitempty"`
	Orphans    int64    `json:"orphans"`
	Samples    []string `json:"samples,omitempty"`
	DurationMS int64    `json:"duration_ms"`
}

// BackupInput asks for a backup before anything changes.
type BackupInput struct {
	Environment string    `json:"environment"`
	RolloutID   string    `json:"rollout_id"`
	Plan        plan.Plan `json:"plan"`
	// Full dumps the whole database whatever the environment's
	// full_backup says (the last environment, unless skip lists
	// "full_backup").
	Full bool `json:"full,omitempty"`
}

// BackupResult lists the artifacts written (paths on the worker host).
type BackupResult struct {
	Artifacts []BackupArtifact `json:"artifacts"`
	// Reused: a retry found this run's completed backup (its manifest) and
	// verified it instead of dumping again.
	Reused bool `json:"reused,omitempty"`
}

// BackupArtifact is one file of a backup.
type BackupArtifact struct {
	Kind      string `json:"kind"`
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
	Entries   int    `json:"entries,omitempty"`
}

// ConstraintInput applies or validates one constraint.
type ConstraintInput struct {
	Environment string `json:"environment"`
	RolloutID   string `json:"rollout_id"`
	// RunID binds ownership to this run of the rollout: a later run reusing
	// the workflow id never owns (or drops) what an earlier run created.
	RunID string          `json:"run_id,omitempty"`
	FK    plan.ForeignKey `json:"fk"`
}

// ConstraintResult is what one DDL step did.
type ConstraintResult struct {
	FK         string `json:"fk"`
	Table      string `json:"table"`
	Action     string `json:"action"`
	Attempts   int    `json:"attempts"`
	DurationMS int64  `json:"duration_ms"`
	// WaitedMS is the time the statement waited, without queueing for its
	// locks, for conflicting transactions to end; WaitedFor names the last
	// one (pid, application_name, transaction age; never query text).
	WaitedMS  int64  `json:"waited_ms,omitempty"`
	WaitedFor string `json:"waited_for,omitempty"`
	// Terminated lists the backends of an earlier attempt of this step
	// (a dead worker's) that were still running it and were ended first.
	Terminated []int `json:"terminated,omitempty"`
}

// RemediateInput remediates one constraint's orphans.
type RemediateInput struct {
	Environment string          `json:"environment"`
	RolloutID   string          `json:"rollout_id"`
	RunID       string          `json:"run_id,omitempty"`
	FK          plan.ForeignKey `json:"fk"`
	// Mode is "delete", "delete_with_dependents" or "set_null".
	Mode string `json:"mode"`
}

// Remediation modes (RemediateInput.Mode).
const (
	ModeDelete               = "delete"
	ModeDeleteWithDependents = "delete_with_dependents"
	ModeSetNull              = "set_null"
)

// ImpactInput asks what remediating FK's orphans would do.
type ImpactInput struct {
	Environment string          `json:"environment"`
	FK          plan.ForeignKey `json:"fk"`
}

// Impact is what remediating one constraint's orphans would do across the
// foreign-key graph, and which choices are possible.
type Impact struct {
	FK      string `json:"fk"`
	Orphans int64  `json:"orphans"`
	// Dependents are the rows in other tables (recursively) that deleting
	// the orphans would block, delete or change.
	Dependents []ImpactRow `json:"dependents,omitempty"`
	// Triggers are user triggers on the tables involved.
	Triggers []string `json:"triggers,omitempty"`
	Nullable bool     `json:"nullable"`
	// Impossible maps a choice (delete, delete-with-dependents, set-null)
	// that cannot be carried out to the reason.
	Impossible map[string]string `json:"impossible,omitempty"`
}

// ImpactRow is one (table, constraint) edge of a remediation's impact:
// the rows reached through that constraint and its ON DELETE action. The
// gate's notification carries it unchanged.
type ImpactRow = notify.ImpactRow

// QuarantineInput asks for this run's quarantine; Restore puts it back.
type QuarantineInput struct {
	Environment string `json:"environment"`
	RolloutID   string `json:"rollout_id"`
	RunID       string `json:"run_id,omitempty"`
	Restore     bool   `json:"restore,omitempty"`
}

// QuarantineResult counts quarantined rows per table (after a restore:
// what is left) and, for a restore, how many rows went back.
type QuarantineResult struct {
	Tables   []QuarantineCount `json:"tables,omitempty"`
	Rows     int64             `json:"rows"`
	Restored int64             `json:"restored,omitempty"`
	// RestoreError: the restore failed and changed nothing (for example
	// a key was reused meanwhile); the rows stay in quarantine.
	RestoreError string `json:"restore_error,omitempty"`
}

// QuarantineCount is one table's quarantined rows.
type QuarantineCount struct {
	Table  string `json:"table"`
	Action string `json:"action"`
	Rows   int64  `json:"rows"`
}

// RemediationResult is what remediation did (rows quarantined first).
type RemediationResult struct {
	FK          string `json:"fk"`
	Mode        string `json:"mode"`
	Quarantined int64  `json:"quarantined"`
	Affected    int64  `json:"affected"`
	Batches     int    `json:"batches"`
	// Tables counts the rows changed per table when dependents were
	// removed or changed too (delete_with_dependents).
	Tables []QuarantineCount `json:"tables,omitempty"`
}

// BehaviourInput runs the behaviour tests (insert, protect, actions) for these constraints.
type BehaviourInput struct {
	Environment string            `json:"environment"`
	FKs         []plan.ForeignKey `json:"fks"`
}

// BehaviourResult is one constraint's tests.
type BehaviourResult struct {
	FK     string          `json:"fk"`
	Passed bool            `json:"passed"`
	Cases  []BehaviourCase `json:"cases"`
}

// BehaviourCase is one test.
type BehaviourCase struct {
	Name    string `json:"name"`
	Outcome string `json:"outcome"`
	Passed  bool   `json:"passed"`
	Detail  string `json:"detail,omitempty"`
}

// RollbackInput drops this rollout's constraints in one environment.
type RollbackInput struct {
	Environment string    `json:"environment"`
	RolloutID   string    `json:"rollout_id"`
	RunID       string    `json:"run_id,omitempty"`
	Plan        plan.Plan `json:"plan"`
	// KeepValidated drops only constraints still NOT VALID; validated ones
	// are reported as "kept-validated" (a cancelled rollout's cleanup).
	KeepValidated bool `json:"keep_validated,omitempty"`
}

// Verification is one constraint as the catalog has it.
type Verification struct {
	FK             string `json:"fk"`
	Exists         bool   `json:"exists"`
	Validated      bool   `json:"validated"`
	SameDefinition bool   `json:"same_definition"`
	Owned          bool   `json:"owned"`
	OwnerRollout   string `json:"owner_rollout,omitempty"`
}

// HooksInput runs the environment's configured deploy hooks.
type HooksInput struct {
	Environment string `json:"environment"`
	RolloutID   string `json:"rollout_id"`
	// RunID is the rollout's run (FKROLLOUT_RUN_ID in a hook's
	// environment): a hook run again for the same run can tell.
	RunID string `json:"run_id,omitempty"`
	// Done names the hooks that already succeeded in this run; they are
	// not run again (a name twice: its first two occurrences).
	Done []string `json:"done,omitempty"`
	// One runs only the first hook not done, so the workflow records each
	// hook's success in history before the next starts. No hook left: an
	// empty result.
	One bool `json:"one,omitempty"`
	// Set is which hooks run: the deploy hooks (empty), or the rollback
	// hooks around the drop (HookSetRollbackBefore, HookSetRollbackAfter).
	Set string `json:"set,omitempty"`
}

// Hook sets of an environment besides its deploy hooks (config
// rollback_hooks.before / .after).
const (
	HookSetRollbackBefore = "rollback_before"
	HookSetRollbackAfter  = "rollback_after"
)

// HookResult is one hook run; Output is the captured tail.
type HookResult struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	ExitCode   int    `json:"exit_code"`
	Output     string `json:"output,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// SmokeResult is one smoke check or cleanup step.
type SmokeResult struct {
	Name string `json:"name"`
	// Kind is "cleanup" for a cleanup step, empty for a check.
	Kind string `json:"kind,omitempty"`
	OK   bool   `json:"ok"`
	// Status is the HTTP status received (0: no answer).
	Status   int    `json:"status"`
	Expected int    `json:"expected"`
	Detail   string `json:"detail,omitempty"`
	// Failures lists every assertion that did not hold (status, body,
	// captures, log).
	Failures []string `json:"failures,omitempty"`
	// Captured names the values taken for later checks (never the values).
	Captured []string `json:"captured,omitempty"`
	// Skipped: not sent because a value it needs was not captured.
	Skipped    bool  `json:"skipped,omitempty"`
	DurationMS int64 `json:"duration_ms,omitempty"`
}

// ReportInput is the completion report to publish.
type ReportInput struct {
	RolloutID string            `json:"rollout_id"`
	State     string            `json:"state"`
	Markdown  string            `json:"markdown"`
	Thread    notify.MessageRef `json:"thread"`
}

// ReportResult says where the report went. A notifier failure does not
// fail the activity (the file is the record); it is reported here.
type ReportResult struct {
	Path      string `json:"path"`
	SizeBytes int    `json:"size_bytes"`
	Posted    bool   `json:"posted"`
	PostError string `json:"post_error,omitempty"`
}
