package workflows

import "github.com/fkrollout/fkrollout/internal/identity"

// The claims every client signs. Clients (CLI, Slack) and the validators
// build them here, so a signed request and its check can never disagree on
// which fields count.

// DecisionClaim is what a decide request signs.
func DecisionClaim(workflowID, runID string, in DecisionInput) identity.Claim {
	return identity.Claim{Action: UpdateDecide, WorkflowID: workflowID, RunID: runID, GateID: in.GateID, Choice: in.Choice,
		Actor: in.Actor, Roles: in.Roles, SlackUser: in.SlackUser, Reason: in.Reason, Constraints: in.Constraints, Via: in.Via}
}

// ControlClaim is what a pause, resume, abort or rollback request signs.
func ControlClaim(workflowID, runID, kind string, in ControlInput) identity.Claim {
	return identity.Claim{Action: kind, WorkflowID: workflowID, RunID: runID, Actor: in.Actor, Reason: in.Reason,
		Rollback: in.Rollback, Via: in.Via}
}

// RefusalClaim is what a record-refusal signal signs.
func RefusalClaim(workflowID, runID string, r Refusal) identity.Claim {
	return identity.Claim{Action: SignalRecordRefusal, WorkflowID: workflowID, RunID: runID, GateID: r.GateID,
		Actor: r.Actor, Reason: r.Reason, Via: r.Signal}
}

// StartClaim is what the requester signs to start a rollout; the run id is
// not known yet, so the workflow id and the content digest bind it.
func StartClaim(workflowID string, in Input) identity.Claim {
	envs := make([]string, 0, len(in.Environments))
	for _, e := range in.Environments {
		envs = append(envs, e.Name)
	}
	return identity.Claim{Action: "start", WorkflowID: workflowID, Actor: in.Requester, Digest: identity.StartDigest(in.Plan, envs)}
}
