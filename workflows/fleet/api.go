package fleet

// The contract of FKFleetRollout: its name, input, status and the names
// its wave gates go by. Queries and Updates are the rollout's
// (rollout.QueryStatus, rollout.QueryReport) and the gate kernel's
// (approval.UpdateDecide, approval.UpdateAbort and their signals).

import (
	"encoding/json"
	"reflect"
	"slices"
	"time"

	"github.com/fkrollout/fkrollout/internal/jsonkeys"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// Names and defaults of the fleet rollout. The query and update names are
// the rollout's own (QueryStatus, UpdateDecide, UpdateAbort, their signals):
// clients that decide an FKRollout gate decide a fleet gate unchanged.
const (
	// WorkflowName is the registered workflow type.
	WorkflowName = "FKFleetRollout"
	// DefaultCanary is the size of the first wave.
	DefaultCanary = 1
	// DefaultBatch is the size of every later wave.
	DefaultBatch = 5
	// DefaultFailureBudget: the fleet stops once this many targets failed.
	DefaultFailureBudget = 1
	// MaxTargets bounds the fleet's history: every child's result (its
	// whole Status) is recorded in the fleet's history when it ends.
	MaxTargets = 200
	// GateEnvironment is the environment part of wave gate ids
	// ("fleet/wave/<n>") and the policy key ("promotion/fleet").
	GateEnvironment = "fleet"
	// ErrTypeInput fails a fleet whose input is invalid (nothing started).
	ErrTypeInput = "FleetInputError"
	// ErrTypeBudget fails a fleet whose failure budget ran out.
	ErrTypeBudget = "FleetFailureBudgetExhausted"
)

// Input starts a fleet rollout. Targets are environment NAMES, each
// configured with its DSN in every worker's configuration, as for
// FKRollout; never DSNs. Every other field is passed to each child as its
// FKRollout input with a single environment.
type Input struct {
	// Plan is the plan text (YAML or migration SQL), the same for every target.
	Plan string `json:"plan"`
	// PlanFormat: "sql", "yaml", "json" or empty (recognised from the text).
	PlanFormat string `json:"plan_format,omitempty"`
	// Requester asked for the fleet; four-eyes applies to the wave gates and
	// to every child's gates.
	Requester string `json:"requester"`
	// Targets are the databases, in rollout order.
	Targets []string `json:"targets"`
	// Canary is the size of the first wave (default 1).
	Canary int `json:"canary,omitempty"`
	// BatchSize is the size of each later wave (default 5).
	BatchSize int `json:"batch_size,omitempty"`
	// FailureBudget: once this many targets have failed, the fleet starts no
	// more (default 1: the first failure stops it).
	FailureBudget int `json:"failure_budget,omitempty"`
	// MaintenanceWindow applies to every target; required unless skip
	// lists "window" (each target is the last environment of its child).
	MaintenanceWindow *rollout.MaintenanceWindow `json:"maintenance_window,omitempty"`
	// Approval is the policy of the wave gates (key "promotion/fleet", else
	// "promotion", else the default) and of every child's gates.
	Approval   approval.Policy    `json:"approval"`
	Thresholds rollout.Thresholds `json:"thresholds"`
	// Monitor configures the watch every child runs after its database is
	// done, unless skip lists "monitor".
	Monitor rollout.MonitorInput `json:"monitor"`
	// Perf configures the perf phase every child runs in its own target,
	// unless skip lists "perf"; leave perf.environment out (fleets started
	// before skip existed ran it, when enabled, only in perf.environment or
	// the canary wave's targets).
	Perf   *rollout.PerfInput `json:"perf,omitempty"`
	DryRun bool               `json:"dry_run,omitempty"`
	// Skip turns runbook safeguards off in every child, as a rollout's skip
	// does ("perf", "monitor", "window", "full_backup"): each one listed
	// must be allowed by the worker's policy.allow_skip, or the fleet is
	// refused before any child starts. Unlisted, every child runs its own
	// perf phase, watch, maintenance window and full backup.
	Skip []string `json:"skip,omitempty"`
	// RequesterProof is the requester's signature over the fleet's start
	// (StartClaim); each child verifies it against the fleet's scope.
	RequesterProof *identity.Proof `json:"requester_proof,omitempty"`

	// unknown are keys of the JSON this input was decoded from that no
	// field takes; the workflow and the CLI refuse them.
	unknown []jsonkeys.Key
}

// UnmarshalJSON decodes an input as encoding/json does and remembers the
// keys no field takes (see UnknownKeys).
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

// Status is what the fleet's status query returns, and its result.
type Status struct {
	FleetID         string               `json:"fleet_id"`
	Requester       string               `json:"requester"`
	DryRun          bool                 `json:"dry_run,omitempty"`
	PlanName        string               `json:"plan_name,omitempty"`
	ConstraintCount int                  `json:"constraint_count"`
	State           rollout.RolloutState `json:"state"`
	// Phase is "wave-<n>/<waves>" while waves run (RolloutPhase).
	Phase string `json:"phase"`
	// CurrentWave is the last wave started (1-based; 0 before the first).
	CurrentWave int      `json:"current_wave"`
	Waves       []Wave   `json:"waves"`
	Targets     []Target `json:"targets"`
	Succeeded   int      `json:"succeeded"`
	Failed      int      `json:"failed"`
	// FailureBudget is the effective budget: the fleet stops at Failed >= FailureBudget.
	FailureBudget int `json:"failure_budget"`
	// SafeguardsOff are the safeguards every child runs without (the
	// input's skip, allowed by the worker's policy).
	SafeguardsOff []string                `json:"safeguards_off,omitempty"`
	OpenGate      *approval.Gate          `json:"open_gate,omitempty"`
	Gates         []approval.Gate         `json:"gates"`
	Decisions     []approval.Decision     `json:"decisions"`
	Refusals      []approval.Refusal      `json:"refusals,omitempty"`
	Timeline      []rollout.TimelineEntry `json:"timeline"`
	// TimelineDropped counts the oldest entries dropped to bound the size.
	TimelineDropped int    `json:"timeline_dropped,omitempty"`
	Error           string `json:"error,omitempty"`
	// ReportPath is where the worker wrote the fleet's completion report.
	ReportPath string    `json:"report_path,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Wave is one wave: the canary, then batches.
type Wave struct {
	Number  int      `json:"number"`
	Canary  bool     `json:"canary,omitempty"`
	Targets []string `json:"targets"`
	// State: pending, running, completed (every child ended), skipped.
	State     rollout.RolloutState `json:"state"`
	Succeeded int                  `json:"succeeded"`
	Failed    int                  `json:"failed"`
	StartedAt *time.Time           `json:"started_at,omitempty"`
	EndedAt   *time.Time           `json:"ended_at,omitempty"`
	// Gate is the gate opened after this wave ("fleet/wave/<n>"), if any.
	Gate string `json:"gate,omitempty"`
}

// Target is one database of the fleet and its FKRollout child.
type Target struct {
	Name string `json:"name"`
	Wave int    `json:"wave"`
	// ChildID is the child's workflow id, "<fleet-id>/<target>": `fkrollout
	// status <child-id>` shows its full status, and its own gates are
	// decided there.
	ChildID string               `json:"child_id"`
	RunID   string               `json:"run_id,omitempty"`
	State   rollout.RolloutState `json:"state"`
	// Phase is the child's last phase (known when it ended; query the child
	// while it runs).
	Phase  string `json:"phase,omitempty"`
	Failed bool   `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
	// Planned is the child's number of constraints (known when it ended);
	// Validated (validated or tested), Debt and RolledBack count them.
	Planned    int        `json:"planned,omitempty"`
	Validated  int        `json:"validated"`
	Debt       int        `json:"debt"`
	RolledBack int        `json:"rolled_back"`
	ReportPath string     `json:"report_path,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	EndedAt    *time.Time `json:"ended_at,omitempty"`
}

// Waves splits targets into waves: the first canary targets, then
// batches of batch. Both sizes must be at least 1.
func Waves(targets []string, canary, batch int) [][]string {
	var waves [][]string
	if canary < 1 || batch < 1 {
		return nil
	}
	rest := targets
	n := min(canary, len(rest))
	if n > 0 {
		waves = append(waves, slices.Clone(rest[:n]))
		rest = rest[n:]
	}
	for len(rest) > 0 {
		n := min(batch, len(rest))
		waves = append(waves, slices.Clone(rest[:n]))
		rest = rest[n:]
	}
	return waves
}
