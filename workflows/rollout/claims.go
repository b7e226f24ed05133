package rollout

import (
	"fmt"
	"slices"
	"strings"

	"github.com/fkrollout/fkrollout/internal/identity"
)

// StartClaim is what the requester signs to start a rollout; the run id is
// not known yet, so the workflow id and the content digest bind it.
func StartClaim(workflowID string, in Input) identity.Claim {
	envs := make([]string, 0, len(in.Environments))
	for _, e := range in.Environments {
		envs = append(envs, e.Name)
	}
	return identity.Claim{Action: "start", WorkflowID: workflowID, Actor: in.Requester, Digest: identity.StartDigest(in.Plan, envs)}
}

// startClaimFor is the claim a rollout's start proof must match: its own
// start, or for a fleet's child, the fleet's start (the child's id is
// <fleet-id>/<target> and its target one of the fleet's).
func startClaimFor(workflowID, parentID string, in Input) (identity.Claim, error) {
	if in.FleetScope == nil {
		return StartClaim(workflowID, in), nil
	}
	if len(in.Environments) != 1 || !slices.Contains(in.FleetScope.Targets, in.Environments[0].Name) {
		return identity.Claim{}, fmt.Errorf("fleet_scope: the rollout's one environment must be a target of the fleet")
	}
	fleetID, ok := strings.CutSuffix(workflowID, "/"+in.Environments[0].Name)
	if !ok {
		return identity.Claim{}, fmt.Errorf("fleet_scope: workflow id %q is not <fleet-id>/%s", workflowID, in.Environments[0].Name)
	}
	// Only the fleet itself may start a child on its requester's proof: a
	// copy of the proof from history cannot start another run by hand.
	if parentID != fleetID {
		return identity.Claim{}, fmt.Errorf("fleet_scope: this rollout was not started by fleet %q", fleetID)
	}
	envs := make([]EnvironmentInput, 0, len(in.FleetScope.Targets))
	for _, t := range in.FleetScope.Targets {
		envs = append(envs, EnvironmentInput{Name: t})
	}
	return StartClaim(fleetID, Input{Plan: in.Plan, Requester: in.Requester, Environments: envs}), nil
}
