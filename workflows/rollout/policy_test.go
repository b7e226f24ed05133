package rollout

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/signers"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// olga is an operator: she may pause, abort and roll back any rollout.
const olga = "olga@example.com"

// trustKeys are the test identities' keys.
type trustKeys = signers.Keys

func newTrustKeys(t *testing.T) trustKeys {
	t.Helper()
	return signers.New(t, requester, alice, bob, olga, mallory)
}

// trustPolicy is a strict worker policy: every identity has a key; alice
// holds the dba role; staging is decided by alice or bob, production by
// two of them after staging; olga operates; mallory has a key but no say.
func trustPolicy(k trustKeys) policy.Config {
	return policy.Config{
		Identities: k.Identities(map[string][]string{alice: {"dba"}}),
		Operators:  []string{olga},
		AllowSkip:  slices.Clone(policy.Safeguards),
		Environments: map[string]policy.Environment{
			"staging":    {Approvers: []string{alice, bob}, Perf: true},
			"production": {Approvers: []string{alice, bob}, MinApprovals: 2, Requires: []string{"staging"}},
		},
	}
}

// trustInput is a rollout of staging then production whose input adds no
// approval rules of its own (and skips every safeguard).
func trustInput() Input {
	return Input{Plan: "foreign_keys: [...]", Requester: requester, Skip: slices.Clone(policy.Safeguards),
		Environments: []EnvironmentInput{{Name: "staging"}, {Name: "production"}}}
}

const trustWorkflowID = "rollout-test-1"

// signStart signs in as its requester would (the CLI) at the given time.
func signStart(t *testing.T, k trustKeys, workflowID string, in *Input, at time.Time) {
	t.Helper()
	in.RequesterProof = k.Sign(t, in.Requester, StartClaim(workflowID, *in), at)
}

func TestResolvePolicy(t *testing.T) {
	keys := newTrustKeys(t)
	now := start
	type tc struct {
		name       string
		cfg        func(c *policy.Config)
		in         func(in *Input)
		workflowID string   // default trustWorkflowID
		gateEnvs   []string // PolicyRequest.GateEnvironments
		unsigned   bool     // leave the start unsigned (else the requester signs it at now)
		// parent is the workflow that started this one; default: for an id
		// "<fleet>/<target>", the fleet. "-" means started by hand.
		parent  string
		wantErr []string
		check   func(t *testing.T, eff *approval.EffectivePolicy)
	}
	cases := []tc{
		{name: "signed start under the worker policy", check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.True(t, eff.RequesterVerified)
			assert.False(t, eff.TrustClientIdentity)
			assert.Equal(t, "5m0s", eff.MaxClockSkew)
			stg := eff.Approval.Gates["remediation/staging"]
			assert.Equal(t, []string{alice, bob}, stg.Approvers)
			assert.Equal(t, 1, stg.MinApprovals)
			assert.Equal(t, 2, eff.Approval.Gates["promotion/production"].MinApprovals)
			assert.Equal(t, 2, eff.Approval.Gates["remediation/production"].MinApprovals)
			assert.NotContains(t, eff.Approval.Gates, "promotion/staging", "nothing is promoted into the first environment")
			assert.Equal(t, []string{olga}, eff.Approval.Operators)
			assert.Equal(t, policy.RemediationChoices, eff.RemediationChoices["staging"])
			assert.Equal(t, []string{"staging"}, eff.PerfEnvironments)
			assert.Equal(t, keys.Pub(alice), eff.Identities[alice].PublicKeys[0], "public keys reach the rollout")
		}},

		// Environments without a policy.
		{name: "environment without policy refused", in: func(in *Input) {
			in.Environments = append(in.Environments, EnvironmentInput{Name: "dr"})
		}, wantErr: []string{`environment "dr" has no approval policy on this worker (policy.environments.dr)`}},
		{name: "development mode: environment without policy keeps the input's rules", cfg: func(c *policy.Config) {
			*c = policy.Config{TrustClientIdentity: true, AllowSkip: policy.Safeguards}
		}, in: func(in *Input) {
			in.Approval = approval.Policy{Default: approval.GateRule{Approvers: []string{mallory}},
				Gates: map[string]approval.GateRule{"remediation/staging": {Approvers: []string{"carol@example.com", "role:dba"}, MinApprovals: 3}}}
		}, unsigned: true, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.True(t, eff.TrustClientIdentity)
			assert.True(t, eff.RequesterVerified, "development mode believes the requester")
			r := eff.Approval.Gates["remediation/staging"]
			assert.Equal(t, []string{"carol@example.com", "role:dba"}, r.Approvers)
			assert.Equal(t, 3, r.MinApprovals)
			assert.Equal(t, []string{mallory}, eff.Approval.Gates["promotion/production"].Approvers)
			assert.Equal(t, approval.ChoiceReject, eff.Approval.Gates["promotion/production"].OnTimeout)
			assert.ElementsMatch(t, []string{"staging", "production"}, eff.PerfEnvironments)
			assert.NotEmpty(t, eff.Notes)
			assert.Contains(t, fmt.Sprint(eff.Notes), "environment staging has no worker policy")
		}},

		// requires.
		{name: "requires: production before staging refused", in: func(in *Input) {
			in.Environments = []EnvironmentInput{{Name: "production"}, {Name: "staging"}}
		}, wantErr: []string{`environment "production" requires "staging" earlier in the same rollout`}},
		{name: "requires: production alone refused", in: func(in *Input) {
			in.Environments = []EnvironmentInput{{Name: "production"}}
		}, wantErr: []string{`environment "production" requires "staging"`}},
		{name: "requires: staging alone is fine", in: func(in *Input) {
			in.Environments = []EnvironmentInput{{Name: "staging"}}
		}},

		// Input approvers.
		{name: "input approver outside the worker's list refused", in: func(in *Input) {
			in.Approval.Default = approval.GateRule{Approvers: []string{alice, mallory}}
		}, wantErr: []string{`approval.default.approvers: "mallory@example.com" may not approve remediation gates in staging`}},
		{name: "input role the worker does not list refused", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation": {Approvers: []string{"role:dba"}}}
		}, wantErr: []string{`approval.gates[remediation].approvers: "role:dba" may not approve remediation gates`}},
		{name: "input may narrow to one of the worker's approvers", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation/staging": {Approvers: []string{"BOB@example.com"}}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, []string{"BOB@example.com"}, eff.Approval.Gates["remediation/staging"].Approvers)
			assert.Equal(t, []string{alice, bob}, eff.Approval.Gates["approval/staging"].Approvers, "other gates keep the worker's list")
		}},
		{name: "input approver admitted by a role of the worker's list", cfg: func(c *policy.Config) {
			c.Environments["staging"] = policy.Environment{Approvers: []string{"role:dba"}}
		}, in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation/staging": {Approvers: []string{alice, "role:dba"}}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, []string{alice, "role:dba"}, eff.Approval.Gates["remediation/staging"].Approvers)
		}},
		{name: "input approver without the worker's role refused", cfg: func(c *policy.Config) {
			c.Environments["staging"] = policy.Environment{Approvers: []string{"role:dba"}}
		}, in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation/staging": {Approvers: []string{bob}}}
		}, wantErr: []string{`"bob@example.com" may not approve remediation gates in staging under the worker policy (allowed: role:dba)`}},

		// min_approvals.
		{name: "min_approvals cannot be lowered", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/production": {MinApprovals: 1}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, 2, eff.Approval.Gates["promotion/production"].MinApprovals)
		}},
		{name: "min_approvals may rise", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation/staging": {MinApprovals: 2}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, 2, eff.Approval.Gates["remediation/staging"].MinApprovals)
			assert.Equal(t, 1, eff.Approval.Gates["approval/staging"].MinApprovals)
		}},
		{name: "min_approvals above the approvers refused", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation/staging": {MinApprovals: 3}}
		}, wantErr: []string{"gate remediation/staging needs 3 distinct approvers but only 2 may approve"}},
		{name: "worker gate rule raises min_approvals", cfg: func(c *policy.Config) {
			c.Environments["staging"] = policy.Environment{Approvers: []string{"role:dba"},
				Gates: map[string]policy.GateRule{"remediation": {MinApprovals: 3}}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, 3, eff.Approval.Gates["remediation/staging"].MinApprovals)
			assert.Equal(t, 1, eff.Approval.Gates["approval/staging"].MinApprovals)
		}},

		// allow_requester.
		{name: "allow_requester loosening refused", in: func(in *Input) {
			in.Approval.Default = approval.GateRule{AllowRequester: true}
		}, wantErr: []string{"approval.default.allow_requester: the worker policy does not let the requester approve in staging"}},
		{name: "allow_requester where the worker allows it", cfg: func(c *policy.Config) {
			e := c.Environments["staging"]
			e.AllowRequester = true
			c.Environments["staging"] = e
		}, in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"remediation/staging": {AllowRequester: true}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.True(t, eff.Approval.Gates["remediation/staging"].AllowRequester)
		}},

		// on_timeout.
		{name: "proceeding on_timeout refused", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/production": {Timeout: "1h", OnTimeout: approval.ChoiceApprove}}
		}, wantErr: []string{`approval.gates[promotion/production].on_timeout "approve" would proceed without a person in production`}},
		{name: "proceeding on_timeout where timeout_may_proceed lists it", cfg: func(c *policy.Config) {
			e := c.Environments["production"]
			e.TimeoutMayProceed = []string{approval.ChoiceApprove}
			c.Environments["production"] = e
		}, in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/production": {Timeout: "1h", OnTimeout: approval.ChoiceApprove}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			r := eff.Approval.Gates["promotion/production"]
			assert.Equal(t, approval.ChoiceApprove, r.OnTimeout)
			assert.Equal(t, "1h", r.Timeout)
			assert.Equal(t, []string{approval.ChoiceApprove}, eff.TimeoutMayProceed["production"])
		}},
		{name: "timeout_may_proceed of another choice does not help", cfg: func(c *policy.Config) {
			e := c.Environments["production"]
			e.TimeoutMayProceed = []string{approval.ChoiceContinue}
			c.Environments["production"] = e
		}, in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/production": {Timeout: "1h", OnTimeout: approval.ChoiceApprove}}
		}, wantErr: []string{`on_timeout "approve" would proceed`}},
		{name: "conservative on_timeout needs no permission", in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/production": {Timeout: "1h", OnTimeout: approval.ChoiceReject}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, approval.ChoiceReject, eff.Approval.Gates["promotion/production"].OnTimeout)
		}},
		{name: "worker's own proceeding on_timeout not listed refused", cfg: func(c *policy.Config) {
			e := c.Environments["staging"]
			e.Gates = map[string]policy.GateRule{"investigate": {Timeout: "1h", OnTimeout: approval.ChoiceContinue}}
			c.Environments["staging"] = e
		}, wantErr: []string{`on_timeout "continue" would proceed without a person in staging`}},

		// Operators.
		{name: "input operators outside the worker's refused", in: func(in *Input) {
			in.Approval.Operators = []string{olga, mallory}
		}, wantErr: []string{`approval.operators: "mallory@example.com" is not an operator in the worker policy`}},
		{name: "input operators may narrow to an environment operator", cfg: func(c *policy.Config) {
			e := c.Environments["production"]
			e.Operators = []string{bob}
			c.Environments["production"] = e
		}, in: func(in *Input) {
			in.Approval.Operators = []string{bob}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, []string{bob}, eff.Approval.Operators)
			assert.Equal(t, []string{bob}, eff.EnvOperators["production"])
		}},

		// Perf.
		{name: "perf.workload_yaml refused", in: func(in *Input) {
			in.Perf = &PerfInput{Enabled: true, WorkloadYAML: "operations: [{sql: 'DELETE FROM t'}]"}
		}, wantErr: []string{"perf.workload_yaml: inline SQL is not accepted"}},
		{name: "perf.workload_yaml refused even when perf is off", in: func(in *Input) {
			in.Perf = &PerfInput{WorkloadYAML: "operations: []"}
		}, wantErr: []string{"perf.workload_yaml"}},
		{name: "perf in a non-perf environment refused", in: func(in *Input) {
			in.Perf = &PerfInput{Enabled: true, Environment: "production"}
		}, wantErr: []string{`perf: environment "production" may not run the perf phase`, "allows it in: staging"}},
		{name: "perf in the perf environment", in: func(in *Input) {
			in.Perf = &PerfInput{Enabled: true, Environment: "staging", Workload: "demo"}
		}},
		{name: "perf defaults to the first environment", in: func(in *Input) {
			in.Perf = &PerfInput{Enabled: true}
		}},
		{name: "perf defaulting to a non-perf first environment refused", cfg: func(c *policy.Config) {
			e := c.Environments["staging"]
			e.Perf = false
			c.Environments["staging"] = e
		}, in: func(in *Input) {
			in.Perf = &PerfInput{Enabled: true}
		}, wantErr: []string{`perf: environment "staging" may not run the perf phase`, "allows it in: none"}},
		{name: "perf in a dry run writes nothing", in: func(in *Input) {
			in.DryRun = true
			in.Perf = &PerfInput{Enabled: true, Environment: "production"}
		}},

		// Every problem at once.
		{name: "every problem named at once", in: func(in *Input) {
			in.Environments = []EnvironmentInput{{Name: "production"}, {Name: "dr"}}
			in.Approval.Operators = []string{mallory}
			in.Perf = &PerfInput{WorkloadYAML: "x"}
		}, wantErr: []string{`requires "staging"`, `"dr" has no approval policy`, "approval.operators", "perf.workload_yaml"}},
	}

	// The requester's start proof.
	signedBy := func(who string, c func(in Input) identity.Claim, at time.Time) func(in *Input) {
		return func(in *Input) {
			p := identity.Sign(keys[who], in.Requester, c(*in), identity.NewNonce(), at)
			in.RequesterProof = &p
		}
	}
	ownStart := func(in Input) identity.Claim { return StartClaim(trustWorkflowID, in) }
	cases = append(cases,
		tc{name: "requester proof verified", in: signedBy(requester, ownStart, now), unsigned: true,
			check: func(t *testing.T, eff *approval.EffectivePolicy) { assert.True(t, eff.RequesterVerified) }},
		tc{name: "requester proof a minute in the future (clock skew)", in: signedBy(requester, ownStart, now.Add(time.Minute)), unsigned: true,
			check: func(t *testing.T, eff *approval.EffectivePolicy) { assert.True(t, eff.RequesterVerified) }},
		tc{name: "requester proof with the wrong key refused", in: signedBy(mallory, ownStart, now), unsigned: true,
			wantErr: []string{"requester_proof: the signature does not match the request", `(requester "rita@example.com")`}},
		tc{name: "requester proof for another workflow id refused", unsigned: true,
			in:      signedBy(requester, func(in Input) identity.Claim { return StartClaim("rollout-other", in) }, now),
			wantErr: []string{"requester_proof: the signature does not match"}},
		tc{name: "requester proof of another plan refused", unsigned: true, in: func(in *Input) {
			signedBy(requester, ownStart, now)(in)
			in.Plan = "foreign_keys: [changed]"
		}, wantErr: []string{"requester_proof: the signature does not match"}},
		tc{name: "requester proof of other environments refused", unsigned: true, in: func(in *Input) {
			in.Environments = in.Environments[:1]
			signedBy(requester, ownStart, now)(in)
			in.Environments = append(in.Environments, EnvironmentInput{Name: "production"})
		}, wantErr: []string{"requester_proof: the signature does not match"}},
		tc{name: "requester proof that is stale refused", in: signedBy(requester, ownStart, now.Add(-time.Hour)), unsigned: true,
			wantErr: []string{"requester_proof: the signature is too old"}},
		tc{name: "requester proof signed under another identity's name refused", unsigned: true, in: func(in *Input) {
			p := identity.Sign(keys[requester], alice, StartClaim(trustWorkflowID, *in), identity.NewNonce(), now)
			in.RequesterProof = &p
		}, wantErr: []string{`requester_proof: signed by "alice@example.com", not by the requester "rita@example.com"`}},
		tc{name: "requester without a configured key refused", unsigned: true, in: func(in *Input) {
			in.Requester = "carol@example.com"
			p := identity.Sign(keys[requester], in.Requester, StartClaim(trustWorkflowID, *in), identity.NewNonce(), now)
			in.RequesterProof = &p
		}, wantErr: []string{"requester_proof: no public key is configured", `(requester "carol@example.com")`}},
	)

	// No proof: the requester may be any approver, so two must agree.
	cases = append(cases,
		tc{name: "unsigned start: every rule needs two approvers", unsigned: true, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.False(t, eff.RequesterVerified)
			require.NotEmpty(t, eff.Approval.Gates)
			for k, r := range eff.Approval.Gates {
				assert.GreaterOrEqual(t, r.MinApprovals, 2, k)
			}
			assert.Contains(t, fmt.Sprint(eff.Notes), `requester "rita@example.com" did not sign the start`)
		}},
		tc{name: "unsigned start: a rule with one named approver refused", unsigned: true, cfg: func(c *policy.Config) {
			c.Environments["staging"] = policy.Environment{Approvers: []string{alice}}
		}, wantErr: []string{"gate remediation/staging needs 2 distinct approvers but only 1 may approve (alice@example.com)"}},
		tc{name: "signed start: the same rule with one named approver is fine", cfg: func(c *policy.Config) {
			c.Environments["staging"] = policy.Environment{Approvers: []string{alice}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, 1, eff.Approval.Gates["remediation/staging"].MinApprovals)
		}},
		tc{name: "unsigned start: a role may hold enough approvers", unsigned: true, cfg: func(c *policy.Config) {
			c.Environments["staging"] = policy.Environment{Approvers: []string{"role:dba"}}
		}, check: func(t *testing.T, eff *approval.EffectivePolicy) {
			assert.Equal(t, 2, eff.Approval.Gates["remediation/staging"].MinApprovals)
		}},
		tc{name: "unsigned start: input narrowing to one approver refused", unsigned: true, in: func(in *Input) {
			in.Approval.Gates = map[string]approval.GateRule{"approval/staging": {Approvers: []string{bob}}}
		}, wantErr: []string{"gate approval/staging needs 2 distinct approvers but only 1"}},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := trustPolicy(keys)
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			in := trustInput()
			id := c.workflowID
			if id == "" {
				id = trustWorkflowID
			}
			if c.in != nil {
				c.in(&in)
			}
			if !c.unsigned {
				signStart(t, keys, id, &in, now)
			}
			parent := c.parent
			if fleet, _, ok := strings.Cut(id, "/"); ok && parent == "" {
				parent = fleet
			}
			if parent == "-" {
				parent = ""
			}
			eff, err := ResolvePolicy(cfg, PolicyRequest{WorkflowID: id, ParentWorkflowID: parent, Input: in, GateEnvironments: c.gateEnvs}, "", now)
			if len(c.wantErr) > 0 {
				require.Error(t, err)
				assert.Nil(t, eff)
				assert.Contains(t, err.Error(), "the worker policy refuses this rollout: ")
				for _, w := range c.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			require.NotNil(t, eff)
			if c.check != nil {
				c.check(t, eff)
			}
		})
	}
}

// TestAuthenticate: who sent a request is who signed it; roles come from
// the policy unless the worker's Slack handler vouches for them.
func TestAuthenticate(t *testing.T) {
	keys := newTrustKeys(t)
	now := start
	slackKey := identity.DeriveSlackSigner("slack-signing-secret")
	slackPub := identity.FormatPublicKey(slackKey.Public().(ed25519.PublicKey))
	in := trustInput()
	signStart(t, keys, trustWorkflowID, &in, now)
	strict, err := ResolvePolicy(trustPolicy(keys), PolicyRequest{WorkflowID: trustWorkflowID, Input: in}, slackPub, now)
	require.NoError(t, err)
	noSlack, err := ResolvePolicy(trustPolicy(keys), PolicyRequest{WorkflowID: trustWorkflowID, Input: in}, "", now)
	require.NoError(t, err)
	dev, err := ResolvePolicy(policy.Config{TrustClientIdentity: true}, PolicyRequest{WorkflowID: trustWorkflowID, Input: trustInput()}, "", now)
	require.NoError(t, err)

	decision := func(actor string, roles []string, slackUser string) identity.Claim {
		return approval.DecisionClaim(trustWorkflowID, "run-1", approval.DecisionInput{GateID: "staging/remediation/1", Choice: approval.ChoiceDelete,
			Actor: actor, Roles: roles, SlackUser: slackUser, Reason: "test rows", Via: "cli"})
	}
	slackSigned := func(c identity.Claim) *identity.Proof {
		p := identity.Sign(slackKey, identity.SlackSigner, c, identity.NewNonce(), now)
		return &p
	}
	signedAs := func(key ed25519.PrivateKey, keyID string, c identity.Claim, at time.Time) *identity.Proof {
		p := identity.Sign(key, keyID, c, identity.NewNonce(), at)
		return &p
	}

	cases := []struct {
		name      string
		pol       *approval.EffectivePolicy
		claim     identity.Claim
		proof     func(c identity.Claim) *identity.Proof
		wantActor string
		wantRoles []string
		wantErr   []string
	}{
		{name: "slack-signed: claimed roles merged with the policy's", pol: strict,
			claim: decision(alice, []string{"oncall", "dba"}, "U123"), proof: slackSigned,
			wantActor: alice, wantRoles: []string{"dba", "oncall"}},
		{name: "slack-signed: a user without policy roles gets the group roles", pol: strict,
			claim: decision(bob, []string{"dba"}, "U456"), proof: slackSigned,
			wantActor: bob, wantRoles: []string{"dba"}},
		{name: "slack-signed but Slack is not configured", pol: noSlack,
			claim: decision(alice, nil, "U123"), proof: slackSigned,
			wantErr: []string{"signed by the Slack handler, but Slack decisions are not configured"}},
		{name: "slack key id with a person's key", pol: strict,
			claim: decision(alice, []string{"dba"}, "U123"),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[alice], identity.SlackSigner, c, now)
			}, wantErr: []string{"the signature does not match"}},
		{name: "slack-signed proof of other roles", pol: strict,
			claim: decision(bob, []string{"dba"}, "U456"),
			proof: func(c identity.Claim) *identity.Proof {
				c.Roles = nil
				return slackSigned(c)
			}, wantErr: []string{"the signature does not match"}},
		{name: "identity-signed: claimed roles ignored, policy roles taken", pol: strict,
			claim: decision(alice, []string{"admin"}, ""),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[alice], alice, c, now)
			}, wantActor: alice, wantRoles: []string{"dba"}},
		{name: "identity-signed: no policy roles, claimed ones ignored", pol: strict,
			claim: decision(mallory, []string{"dba"}, ""),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[mallory], mallory, c, now)
			}, wantActor: mallory, wantRoles: nil},
		{name: "key id differs from the actor", pol: strict,
			claim: decision(alice, nil, ""),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[bob], bob, c, now)
			}, wantErr: []string{`names actor "alice@example.com" but is signed by "bob@example.com"`}},
		{name: "actor's key id with someone else's key", pol: strict,
			claim: decision(alice, nil, ""),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[mallory], alice, c, now)
			}, wantErr: []string{"the signature does not match"}},
		{name: "slack_user with an identity key refused", pol: strict,
			claim: decision(alice, nil, "U999"),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[alice], alice, c, now)
			}, wantErr: []string{"slack_user is accepted only from the worker's Slack handler"}},
		{name: "signer not in the policy", pol: strict,
			claim: decision("carol@example.com", nil, ""),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[alice], "carol@example.com", c, now)
			}, wantErr: []string{"not an identity of this worker's policy"}},
		{name: "stale signature", pol: strict,
			claim: decision(alice, nil, ""),
			proof: func(c identity.Claim) *identity.Proof {
				return signedAs(keys[alice], alice, c, now.Add(-10*time.Minute))
			}, wantErr: []string{"too old or from the future"}},
		{name: "unsigned refused in strict mode", pol: strict,
			claim:   decision(alice, []string{"dba"}, ""),
			wantErr: []string{`decide by "alice@example.com" is not signed`, "fkrollout decide --key"}},
		{name: "unsigned control names its command", pol: strict,
			claim:   approval.ControlClaim(trustWorkflowID, "run-1", approval.UpdateRollback, approval.ControlInput{Actor: olga, Reason: "x"}),
			wantErr: []string{`rollback by "olga@example.com" is not signed`, "fkrollout rollback --key"}},
		{name: "unsigned accepted in development mode with the claimed roles", pol: dev,
			claim: decision(" mallory@example.com ", []string{"dba"}, ""), wantActor: mallory, wantRoles: []string{"dba"}},
		{name: "no actor", pol: dev, claim: decision("  ", nil, ""), wantErr: []string{"actor is required"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var proof *identity.Proof
			if tc.proof != nil {
				proof = tc.proof(tc.claim)
			}
			actor, roles, err := tc.pol.Authenticate(tc.claim, proof, now)
			if len(tc.wantErr) > 0 {
				require.Error(t, err)
				for _, w := range tc.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				assert.Empty(t, actor)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantActor, actor)
			assert.Equal(t, tc.wantRoles, roles)
		})
	}
}

// TestTimeoutMayApplyAndRemediationChoices: the policy decides what a
// timeout may apply and which remediation choices a gate offers.
func TestTimeoutMayApplyAndRemediationChoices(t *testing.T) {
	g := approval.Guard{Policy: &approval.EffectivePolicy{
		TimeoutMayProceed:  map[string][]string{"staging": {approval.ChoiceContinue}},
		RemediationChoices: map[string][]string{"staging": {approval.ChoiceReAudit}, "production": {approval.ChoiceDelete, approval.ChoiceAbort}},
	}}
	cases := []struct {
		env, choice string
		want        bool
	}{
		{"staging", approval.ChoiceContinue, true},
		{"staging", approval.ChoiceApprove, false},
		{"production", approval.ChoiceContinue, false},
		{"production", approval.ChoiceAbort, true},
		{"production", approval.ChoiceReject, true},
		{"staging", approval.ChoiceRollback, true},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, g.TimeoutMayApply(tc.env, tc.choice), "%s %s", tc.env, tc.choice)
	}
	assert.True(t, (&approval.Guard{}).TimeoutMayApply("production", approval.ChoiceApprove), "histories before the policy keep the input's rule")

	w := &rollout{Board: approval.Board{Guard: g}}
	assert.Equal(t, []string{approval.ChoiceReAudit, approval.ChoiceAbort}, w.remediationChoices("staging", true), "abort always stays")
	assert.Equal(t, []string{approval.ChoiceDelete, approval.ChoiceAbort}, w.remediationChoices("production", true))
	assert.Equal(t, []string{approval.ChoiceAbort}, w.remediationChoices("dr", true))
	assert.Len(t, (&rollout{}).remediationChoices("staging", false), 5, "histories before the impact keep five choices")
	assert.Len(t, (&rollout{}).remediationChoices("staging", true), 6)
}
