package fleet

// A large fleet continues as new between waves, so no run's history grows
// with the number of targets: Temporal ends a workflow whose history
// passes 50 MB (or 50,000 events), and every child adds its input and its
// result to the fleet's history.

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// continueVersion marks histories in which the fleet continues as new at a
// wave boundary once its history is large.
const continueVersion = "scale-fleet-continue-as-new"

// A run continues as new before the next wave when its history has this
// many events or bytes, or when the server suggests it. Small fleets never
// do: they finish in one run, as before.
const (
	continueEvents = 2000
	continueBytes  = 2 << 20
)

// Carried is what a fleet run hands to the run it continues as: the
// fleet's status (waves, per-target summaries, gates and decisions), the
// effective policy, the nonces of signed requests already used, the Slack
// thread and the wave to go on with. Nothing per constraint.
type Carried struct {
	Status Status `json:"status"`
	// NextWave is the 0-based index of the wave the new run starts with
	// (its gate first).
	NextWave        int                       `json:"next_wave"`
	Policy          *approval.EffectivePolicy `json:"policy,omitempty"`
	Nonces          map[string]time.Time      `json:"nonces,omitempty"`
	DroppedRefusals int                       `json:"dropped_refusals,omitempty"`
	Thread          notify.MessageRef         `json:"thread"`
	// Runs counts the runs before this one.
	Runs int `json:"runs"`
	// Safeguards: the children run the safeguards (safeguardsVersion).
	Safeguards bool `json:"safeguards,omitempty"`
}

// errCarriedNotContinued refuses carried state a client passed: only the
// fleet's own continue-as-new may hand it over (it holds decided gates).
var errCarriedNotContinued = errors.New("carried fleet state is accepted only from the fleet's own continue-as-new: start a fleet with its input alone")

// shouldContinue reports whether this run hands over before wave next.
func (f *fleet) shouldContinue(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	if !info.GetContinueAsNewSuggested() && info.GetCurrentHistoryLength() < continueEvents && info.GetCurrentHistorySize() < continueBytes {
		return false
	}
	return workflow.GetVersion(ctx, continueVersion, workflow.DefaultVersion, 1) == 1
}

// continueAsNew hands the fleet over to a new run that starts with wave
// next. Updates in flight finish first: their answers belong to this run.
func (f *fleet) continueAsNew(ctx workflow.Context, next int) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	c := &Carried{Status: *f.snapshot(), NextWave: next, Policy: f.Policy, Nonces: f.Nonces(),
		DroppedRefusals: f.DroppedRefusals, Thread: f.thread, Runs: f.runs + 1, Safeguards: f.safeguards}
	c.Status.OpenGate = nil
	// Every carried gate is decided: its notification was sent and its
	// detail is not needed again.
	for i := range c.Status.Gates {
		if c.Status.Gates[i].Status != approval.GateOpen {
			c.Status.Gates[i].Detail = nil
		}
	}
	f.event(ctx, f.st.Phase, fmt.Sprintf("continuing as new before wave %d (run %d; history %d events, %d bytes)",
		next+1, c.Runs+1, workflow.GetInfo(ctx).GetCurrentHistoryLength(), workflow.GetInfo(ctx).GetCurrentHistorySize()))
	c.Status.Timeline, c.Status.TimelineDropped = f.st.Timeline, f.st.TimelineDropped
	return workflow.NewContinueAsNewError(ctx, WorkflowName, f.in, c)
}

// restore takes over a previous run's state.
func (f *fleet) restore(ctx workflow.Context, c *Carried) error {
	if workflow.GetInfo(ctx).ContinuedExecutionRunID == "" {
		return temporal.NewNonRetryableApplicationError(errCarriedNotContinued.Error(), ErrTypeInput, nil)
	}
	f.st = c.Status
	f.st.FleetID = f.id
	f.Gates = make([]*approval.Gate, 0, len(c.Status.Gates))
	for i := range c.Status.Gates {
		g := c.Status.Gates[i]
		f.Gates = append(f.Gates, &g)
	}
	f.Decisions, f.Refusals = c.Status.Decisions, c.Status.Refusals
	f.Policy, f.DroppedRefusals, f.thread, f.runs, f.safeguards = c.Policy, c.DroppedRefusals, c.Thread, c.Runs, c.Safeguards
	f.RestoreNonces(c.Nonces)
	f.st.Gates, f.st.Decisions, f.st.Refusals, f.st.OpenGate = nil, nil, nil, nil
	return nil
}

// isContinue reports whether err is this run's continue-as-new.
func isContinue(err error) bool {
	var can *workflow.ContinueAsNewError
	return errors.As(err, &can)
}

// childTally is what the fleet keeps of a child's result: the counts (a
// child's result is a bounded copy whose totals count every constraint).
func childTally(st *rollout.Status, env string) (planned, validated, debt, rolledBack int) {
	c := st.Counts(env)
	return st.Planned(), c[rollout.CValidated] + c[rollout.CTested], c[rollout.CDebt], c[rollout.CRolledBack]
}
