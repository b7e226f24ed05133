package workflows

import (
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
)

// resolvePolicy asks the worker for the effective policy before anything
// changes (histories recorded before the worker policy existed keep the
// input's rules). extraGateEnvs are gate environments beyond the input's.
func (g *guard) resolve(ctx workflow.Context, workflowID string, in Input, extraGateEnvs []string) error {
	if workflow.GetVersion(ctx, policyVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	actx := workflow.WithActivityOptions(ctx, withSummary(shortActivity, "check the input against the worker's policy"))
	var eff EffectivePolicy
	req := PolicyRequest{WorkflowID: workflowID, Input: in, GateEnvironments: extraGateEnvs}
	if p := workflow.GetInfo(ctx).ParentWorkflowExecution; p != nil {
		req.ParentWorkflowID = p.ID
	}
	if err := workflow.ExecuteActivity(actx, ActResolvePolicy, req).Get(ctx, &eff); err != nil {
		return fmt.Errorf("policy: %w", rootCause(err))
	}
	g.pol = &eff
	return nil
}

func (w *rollout) resolvePolicy(ctx workflow.Context, extra []string) error {
	if err := w.resolve(ctx, w.id, w.in, extra); err != nil {
		return err
	}
	if w.pol != nil {
		for _, n := range w.pol.Notes {
			w.event(ctx, "", "policy", n)
		}
	}
	return nil
}

// approval is the policy the gates follow: the worker's effective policy,
// or the input's in histories recorded before it existed.
func (w *rollout) approval() ApprovalPolicy {
	if w.pol != nil {
		return w.pol.Approval
	}
	return w.in.Approval
}

// remediationChoices are the choices an environment's remediation gate
// offers: all of them, or those the worker's policy allows there.
func (w *rollout) remediationChoices(env string, withDependents bool) []string {
	all := []string{ChoiceDelete, ChoiceSetNull, ChoiceAcceptDebt, ChoiceReAudit, ChoiceAbort}
	if withDependents {
		all = []string{ChoiceDelete, ChoiceDeleteWithDependents, ChoiceSetNull, ChoiceAcceptDebt, ChoiceReAudit, ChoiceAbort}
	}
	if w.pol == nil {
		return all
	}
	allowed := w.pol.RemediationChoices[env]
	return slices.DeleteFunc(all, func(c string) bool { return c != ChoiceAbort && !slices.Contains(allowed, c) })
}

// timeoutMayApply reports whether a timed-out gate in env may apply
// choice: a conservative choice always; a proceeding one only where the
// worker's policy lists it.
func (g *guard) timeoutMayApply(env, choice string) bool {
	if g.pol == nil || !slices.Contains(policy.ProceedingChoices, choice) {
		return true
	}
	return slices.Contains(g.pol.TimeoutMayProceed[env], choice)
}

// admitDecision authenticates a decision and returns it with the proven
// actor and roles (claimed ones are replaced). It changes no state.
func (g *guard) admitDecision(ctx workflow.Context, workflowID string, in DecisionInput) (DecisionInput, error) {
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	actor, roles, err := g.check(DecisionClaim(workflowID, runID, in), in.Proof, workflow.Now(ctx))
	if err != nil {
		return in, err
	}
	in.Actor, in.Roles = actor, roles
	if g.pol != nil && in.Proof != nil && in.Proof.KeyID != identity.SlackSigner {
		in.SlackUser = ""
	}
	return in, nil
}

// admitControl authenticates a control request.
func (g *guard) admitControl(ctx workflow.Context, workflowID, kind string, in ControlInput) (ControlInput, []string, error) {
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	actor, roles, err := g.check(ControlClaim(workflowID, runID, kind, in), in.Proof, workflow.Now(ctx))
	if err != nil {
		return in, nil, err
	}
	in.Actor = actor
	return in, roles, nil
}

// mayControl says whether actor may pause, resume, abort or roll back under
// the worker's policy: operators always; for pause, resume and abort
// without rollback also the verified requester and anyone who may approve
// a gate of the rollout. Dropping constraints by request is for operators.
func (g *guard) mayControl(kind string, rollback bool, actor string, roles []string, requester string, envs []string) error {
	p := g.pol
	ops := slices.Clone(p.Approval.Operators)
	for _, e := range envs {
		ops = append(ops, p.EnvOperators[e]...)
	}
	if containsFold(ops, actor) {
		return nil
	}
	if rollback || kind == UpdateRollback {
		return fmt.Errorf("%s may not roll back: dropping constraints on request is for operators (%s); approvers choose rollback at a gate", actor, orNoneList(ops))
	}
	if p.RequesterVerified && strings.EqualFold(actor, requester) {
		return nil
	}
	for _, k := range sortedRuleKeys(p.Approval.Gates) {
		if _, env, _ := strings.Cut(k, "/"); slices.Contains(envs, env) && p.Approval.Gates[k].admits(actor, roles, true) {
			return nil
		}
	}
	return fmt.Errorf("%s may not %s this rollout: only operators (%s), the verified requester and its approvers may", actor, kind, orNoneList(ops))
}

// admitRefusal checks a record-refusal signal: under the worker's policy
// only the Slack handler or the refused person's own key may write one.
func (g *guard) admitRefusal(ctx workflow.Context, workflowID string, r Refusal) bool {
	if g.pol == nil || (g.pol.TrustClientIdentity && r.Proof == nil) {
		return true
	}
	if r.Proof == nil {
		return false
	}
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	_, _, err := g.pol.authenticate(RefusalClaim(workflowID, runID, r), r.Proof, workflow.Now(ctx))
	return err == nil
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
