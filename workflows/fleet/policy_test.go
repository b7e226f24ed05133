package fleet

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/signers"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

const (
	requester = "rita@example.com"
	alice     = "alice@example.com"
	bob       = "bob@example.com"
	olga      = "olga@example.com"
	mallory   = "mallory@example.com"
	testRunID = "default-test-run-id"
)

var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func testPlan() plan.Plan {
	t := func(n string) plan.TableName { return plan.TableName{Schema: "public", Name: n} }
	return plan.Plan{Name: "demo", ForeignKeys: []plan.ForeignKey{
		{Name: "fk_instances_workspace", Table: t("workflow_instances"), Columns: []string{"workspace_id"}, RefTable: t("workspaces"), RefColumns: []string{"id"}, Priority: plan.PriorityCritical},
	}}
}

func newKeys(t *testing.T) signers.Keys { return signers.New(t, requester, alice, bob, olga) }

// policyCase is one fleet start or child start under the worker policy.
type policyCase struct {
	name       string
	cfg        func(c *policy.Config)
	in         func(in *rollout.Input)
	workflowID string
	gateEnvs   []string
	unsigned   bool
	// parent is the workflow that started this one; default: for an id
	// "<fleet>/<target>", the fleet. "-" means started by hand.
	parent  string
	wantErr []string
	check   func(t *testing.T, eff *approval.EffectivePolicy)
}

// TestResolvePolicyForFleets: a fleet is checked as a rollout of all its
// targets plus the wave gates; its children carry the fleet's start proof,
// which binds them to the fleet, its targets and its plan.
func TestResolvePolicyForFleets(t *testing.T) {
	keys := newKeys(t)
	now := start
	// A fleet and its children: the children carry the fleet's proof.
	fleetCfg := func(c *policy.Config) {
		for _, e := range []string{"t1", "t2", "t3", GateEnvironment} {
			c.Environments[e] = policy.Environment{Approvers: []string{alice, bob}}
		}
	}
	fleetIn := Input{Plan: "foreign_keys: [...]", Requester: requester, Targets: []string{"t1", "t2"}}
	fleetProof := func(fleetID string, at time.Time) *identity.Proof {
		return keys.Sign(t, requester, StartClaim(fleetID, fleetIn), at)
	}
	child := func(target string, proof *identity.Proof) func(in *rollout.Input) {
		return func(in *rollout.Input) {
			*in = fleetIn.childInput(target, true, true)
			in.RequesterProof = proof
			in.FleetScope = &rollout.FleetScope{Targets: fleetIn.Targets}
		}
	}
	// Children start waves later than the fleet: the proof is hours old.
	old := fleetProof("fleet-1", now.Add(-6*time.Hour))
	cases := []policyCase{
		{name: "fleet start verified, with the wave gate rules", cfg: fleetCfg, workflowID: "fleet-1", unsigned: true,
			gateEnvs: []string{GateEnvironment},
			in: func(in *rollout.Input) {
				f := fleetIn
				f.RequesterProof = fleetProof("fleet-1", now)
				*in = f.PolicyInput()
			}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
				assert.True(t, eff.RequesterVerified)
				assert.Equal(t, []string{alice, bob}, eff.Approval.Gates["promotion/fleet"].Approvers)
			}},
		{name: "fleet without a fleet policy refused", workflowID: "fleet-1", unsigned: true,
			cfg: func(c *policy.Config) {
				fleetCfg(c)
				delete(c.Environments, GateEnvironment)
			},
			gateEnvs: []string{GateEnvironment},
			in:       func(in *rollout.Input) { *in = fleetIn.PolicyInput() },
			wantErr:  []string{`environment "fleet" has no approval policy on this worker (policy.environments.fleet)`}},
		{name: "fleet child verified against the fleet's start", cfg: fleetCfg, workflowID: "fleet-1/t1", unsigned: true,
			in: child("t1", old), check: func(t *testing.T, eff *approval.EffectivePolicy) {
				assert.True(t, eff.RequesterVerified)
			}},
		{name: "fleet child of a target outside the fleet refused", cfg: fleetCfg, workflowID: "fleet-1/t3", unsigned: true,
			in:      child("t3", old),
			wantErr: []string{"requester_proof: fleet_scope: the rollout's one environment must be a target of the fleet"}},
		{name: "fleet child whose scope was widened refused", cfg: fleetCfg, workflowID: "fleet-1/t3", unsigned: true,
			in: func(in *rollout.Input) {
				child("t3", old)(in)
				in.FleetScope.Targets = []string{"t1", "t2", "t3"}
			}, wantErr: []string{"requester_proof: the signature does not match"}},
		{name: "fleet child under another target's id refused", cfg: fleetCfg, workflowID: "fleet-1/t2", unsigned: true,
			in:      child("t1", old),
			wantErr: []string{`requester_proof: fleet_scope: workflow id "fleet-1/t2" is not <fleet-id>/t1`}},
		{name: "fleet child started by hand with the fleet's proof refused", cfg: fleetCfg, workflowID: "fleet-1/t1", unsigned: true,
			parent: "-", in: child("t1", old),
			wantErr: []string{`requester_proof: fleet_scope: this rollout was not started by fleet "fleet-1"`}},
		{name: "fleet child of another fleet refused", cfg: fleetCfg, workflowID: "fleet-2/t1", unsigned: true,
			in:      child("t1", old),
			wantErr: []string{"requester_proof: the signature does not match"}},
		{name: "fleet child with a changed plan refused", cfg: fleetCfg, workflowID: "fleet-1/t1", unsigned: true,
			in: func(in *rollout.Input) {
				child("t1", old)(in)
				in.Plan = "foreign_keys: [other]"
			}, wantErr: []string{"requester_proof: the signature does not match"}},
		{name: "the fleet's proof on a rollout without fleet scope refused", cfg: fleetCfg, workflowID: "fleet-1/t1", unsigned: true,
			in: func(in *rollout.Input) {
				child("t1", fleetProof("fleet-1", now))(in)
				in.FleetScope = nil
			}, wantErr: []string{"requester_proof: the signature does not match"}},
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := policy.Config{Identities: keys.Identities(nil), Operators: []string{olga}, Environments: map[string]policy.Environment{}}
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			var in rollout.Input
			c.in(&in)
			parent := c.parent
			if fleet, _, ok := strings.Cut(c.workflowID, "/"); ok && parent == "" {
				parent = fleet
			}
			if parent == "-" {
				parent = ""
			}
			eff, err := rollout.ResolvePolicy(cfg, rollout.PolicyRequest{WorkflowID: c.workflowID, ParentWorkflowID: parent, Input: in, GateEnvironments: c.gateEnvs}, "", now)
			if len(c.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range c.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			if c.check != nil {
				c.check(t, eff)
			}
		})
	}
}

// TestTrustFleetNeedsFleetPolicy: the wave gates are decided under
// policy.environments.fleet; a strict worker without it refuses the fleet
// at start, before any child.
func TestTrustFleetNeedsFleetPolicy(t *testing.T) {
	for _, withFleet := range []bool{false, true} {
		t.Run(fmt.Sprintf("fleet policy %v", withFleet), func(t *testing.T) {
			h := newFleetHarness(t)
			keys := newKeys(t)
			cfg := policy.Config{Identities: keys.Identities(nil), Operators: []string{olga}, AllowSkip: policy.Safeguards}
			cfg.Environments = map[string]policy.Environment{
				"t1": {Approvers: []string{alice, bob}},
				"t2": {Approvers: []string{alice, bob}},
			}
			if withFleet {
				cfg.Environments[GateEnvironment] = policy.Environment{Approvers: []string{alice, bob}}
			}
			h.policy = cfg
			in := Input{Plan: "foreign_keys: [...]", Requester: requester, Targets: []string{"t1", "t2"}, Skip: slices.Clone(policy.Safeguards)}
			in.RequesterProof = keys.Sign(t, requester, StartClaim(fleetID, in), start)
			// The wave gate opens after the canary's hour; olga stops there.
			h.at(2*time.Hour, func() {
				c := approval.ControlInput{Actor: olga, Reason: "enough"}
				c.Proof = keys.Sign(t, olga, approval.ControlClaim(fleetID, testRunID, approval.UpdateAbort, c), h.env.Now())
				h.abort(c)
			})
			st, err := h.run(in)
			if !withFleet {
				require.Error(t, err)
				var ae *temporal.ApplicationError
				require.True(t, errors.As(err, &ae))
				assert.Equal(t, rollout.ErrTypePolicy, ae.Type())
				assert.Contains(t, err.Error(), `environment "fleet" has no approval policy on this worker (policy.environments.fleet)`)
				assert.NotContains(t, err.Error(), `"t1"`, "the targets have a policy")
				assert.Equal(t, rollout.StateFailed, st.State)
				assert.Empty(t, h.kids.list(), "no child started")
				return
			}
			require.NoError(t, err)
			assert.NotContains(t, h.rejected, "abort "+olga)
			assert.Equal(t, rollout.StateAborted, st.State)
			kids := h.kids.list()
			require.Len(t, kids, 1, "the canary ran; the abort stopped the next wave")
			assert.Equal(t, fleetID+"/t1", kids[0].ID)
			require.NotNil(t, kids[0].In.FleetScope)
			assert.Equal(t, in.RequesterProof, kids[0].In.RequesterProof, "the child carries the fleet's proof")
		})
	}
}
