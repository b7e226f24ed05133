package rollout

import (
	"fmt"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// ResolveEffectivePolicy asks the worker for the effective policy of a
// rollout or fleet before anything changes. It returns nil in histories
// recorded before the worker policy existed: the input's rules apply.
// extraGateEnvs are gate environments beyond the input's (a fleet's waves).
func ResolveEffectivePolicy(ctx workflow.Context, workflowID string, in Input, extraGateEnvs []string) (*approval.EffectivePolicy, error) {
	return resolveEffectivePolicy(ctx, PolicyRequest{WorkflowID: workflowID, Input: in, GateEnvironments: extraGateEnvs})
}

// ResolvePolicyRequest is ResolveEffectivePolicy for a whole request (a
// fleet checking its safeguards).
func ResolvePolicyRequest(ctx workflow.Context, req PolicyRequest) (*approval.EffectivePolicy, error) {
	return resolveEffectivePolicy(ctx, req)
}

func resolveEffectivePolicy(ctx workflow.Context, req PolicyRequest) (*approval.EffectivePolicy, error) {
	if workflow.GetVersion(ctx, policyVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil, nil
	}
	actx := workflow.WithActivityOptions(ctx, steps.WithSummary(steps.Short(), "check the input against the worker's policy"))
	var eff approval.EffectivePolicy
	if p := workflow.GetInfo(ctx).ParentWorkflowExecution; p != nil {
		req.ParentWorkflowID = p.ID
	}
	if err := workflow.ExecuteActivity(actx, ActResolvePolicy, req).Get(ctx, &eff); err != nil {
		return nil, fmt.Errorf("policy: %w", steps.RootCause(err))
	}
	return &eff, nil
}

func (w *rollout) resolvePolicy(ctx workflow.Context, extra []string) error {
	pol, err := resolveEffectivePolicy(ctx, PolicyRequest{WorkflowID: w.id, Input: w.in, GateEnvironments: extra, Safeguards: w.safeguards})
	if err != nil {
		return err
	}
	w.Policy = pol
	if w.Policy != nil {
		for _, n := range w.Policy.Notes {
			w.event(ctx, "", "policy", n)
		}
	}
	return nil
}

// approval is the policy the gates follow: the worker's effective policy,
// or the input's in histories recorded before it existed.
func (w *rollout) approval() approval.Policy {
	if w.Policy != nil {
		return w.Policy.Approval
	}
	return w.in.Approval
}

// remediationChoices are the choices an environment's remediation gate
// offers: all of them, or those the worker's policy allows there.
func (w *rollout) remediationChoices(env string, withDependents bool) []string {
	all := []string{approval.ChoiceDelete, approval.ChoiceSetNull, approval.ChoiceAcceptDebt, approval.ChoiceReAudit, approval.ChoiceAbort}
	if withDependents {
		all = []string{approval.ChoiceDelete, approval.ChoiceDeleteWithDependents, approval.ChoiceSetNull, approval.ChoiceAcceptDebt, approval.ChoiceReAudit, approval.ChoiceAbort}
	}
	if w.Policy == nil {
		return all
	}
	allowed := w.Policy.RemediationChoices[env]
	return slices.DeleteFunc(all, func(c string) bool { return c != approval.ChoiceAbort && !slices.Contains(allowed, c) })
}

// rolloutEnvs are the environment names of the input in order.
func (w *rollout) rolloutEnvs() []string {
	out := make([]string, 0, len(w.in.Environments))
	for _, e := range w.in.Environments {
		out = append(out, e.Name)
	}
	return out
}

// gateKindEnv is the policy key of a gate.
func gateKindEnv(kind notify.GateKind, env string) string { return string(kind) + "/" + env }
