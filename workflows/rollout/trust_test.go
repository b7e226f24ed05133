package rollout

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// testRunID is the run id the test environment gives every workflow.
const testRunID = "default-test-run-id"

// trustHarness drives a rollout under a strict worker policy: requests are
// signed the way the CLI signs them, with the workflow's clock.
type trustHarness struct {
	*harness
	keys trustKeys
	n    int
	// results by label: "accepted", or the rejection's text.
	results map[string]string
}

func newTrustHarness(t *testing.T) *trustHarness {
	h := newHarness(t, func(*harness, approval.Gate) []approval.DecisionInput { return nil })
	keys := newTrustKeys(t)
	h.fake.policy = trustPolicy(keys)
	return &trustHarness{harness: h, keys: keys, results: map[string]string{}}
}

// input is in with its start signed by the requester at the env's clock.
func (h *trustHarness) input(in Input) Input {
	signStart(h.t, h.keys, trustWorkflowID, &in, h.env.Now())
	return in
}

// signed is d signed by who for runID, now.
func (h *trustHarness) signed(who, runID string, d approval.DecisionInput) approval.DecisionInput {
	d.Proof = h.keys.Sign(h.t, who, approval.DecisionClaim(trustWorkflowID, runID, d), h.env.Now())
	return d
}

func (h *trustHarness) signedControl(who, kind string, c approval.ControlInput) approval.ControlInput {
	c.Proof = h.keys.Sign(h.t, who, approval.ControlClaim(trustWorkflowID, testRunID, kind, c), h.env.Now())
	return c
}

// update sends an update with a fresh update id (the test environment
// answers a repeated id from its cache without validating again).
func (h *trustHarness) update(label, name string, arg any) {
	h.n++
	h.env.UpdateWorkflow(name, fmt.Sprintf("%s #%d", label, h.n), &testsuite.TestUpdateCallback{
		OnAccept: func() {},
		OnReject: func(err error) { h.results[label] = err.Error() },
		OnComplete: func(_ any, err error) {
			if err == nil {
				h.results[label] = "accepted"
			}
		},
	}, arg)
}

func (h *trustHarness) openGate(kind notify.GateKind) approval.Gate {
	st := h.status()
	for _, g := range st.OpenGates {
		if g.Kind == kind {
			return g
		}
	}
	require.FailNow(h.t, "no open gate", "want an open %s gate, have %v", kind, st.OpenGates)
	return approval.Gate{}
}

// TestTrustDecisions: under the worker's policy a decision counts only when
// its actor signed it, for this run, once; the roles it claims do not count.
func TestTrustDecisions(t *testing.T) {
	h := newTrustHarness(t)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	// A role on the promotion gate, so believing claimed roles would matter.
	prod := h.fake.policy.Environments["production"]
	prod.Gates = map[string]policy.GateRule{"promotion": {Approvers: []string{alice, bob, "role:dba"}}}
	h.fake.policy.Environments["production"] = prod

	var aliceVote approval.DecisionInput
	h.env.RegisterDelayedCallback(func() {
		g := h.openGate(notify.GatePromotion)
		d := func(actor string, roles ...string) approval.DecisionInput {
			return approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: actor, Roles: roles, Reason: "staging is clean", Via: "cli"}
		}
		h.update("unsigned", approval.UpdateDecide, d(alice))
		h.update("other run", approval.UpdateDecide, h.signed(alice, "another-run-id", d(alice)))
		h.update("claimed role", approval.UpdateDecide, h.signed(mallory, testRunID, d(mallory, "dba")))
		aliceVote = h.signed(alice, testRunID, d(alice, "admin"))
		h.update("alice", approval.UpdateDecide, aliceVote)
	}, time.Hour)
	h.env.RegisterDelayedCallback(func() {
		require.Equal(t, "accepted", h.results["alice"])
		h.update("replay", approval.UpdateDecide, aliceVote)
		recased := aliceVote
		p := *aliceVote.Proof
		p.KeyID = strings.ToUpper(p.KeyID)
		recased.Proof = &p
		h.update("replay under another key id spelling", approval.UpdateDecide, recased)
	}, time.Hour+time.Minute)
	h.env.RegisterDelayedCallback(func() {
		g := h.openGate(notify.GatePromotion)
		assert.Len(t, g.Votes, 1, "only alice's vote counted so far")
		h.update("bob", approval.UpdateDecide, h.signed(bob, testRunID, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: bob, Via: "cli"}))
	}, time.Hour+2*time.Minute)

	st, err := h.run(h.input(trustInput()))
	require.NoError(t, err)

	assert.Contains(t, h.results["unsigned"], "is not signed")
	assert.Contains(t, h.results["other run"], identity.ErrBadSignature.Error())
	assert.Contains(t, h.results["claimed role"], "mallory@example.com is not an allowed approver")
	assert.Equal(t, "accepted", h.results["alice"])
	assert.Contains(t, h.results["replay"], "replay refused")
	assert.Contains(t, h.results["replay under another key id spelling"], "replay refused")
	assert.Equal(t, "accepted", h.results["bob"])

	assert.Equal(t, StateCompleted, st.State)
	var promo *approval.Gate
	for i := range st.Gates {
		if st.Gates[i].Kind == notify.GatePromotion {
			promo = &st.Gates[i]
		}
	}
	require.NotNil(t, promo)
	assert.Equal(t, approval.GateDecided, promo.Status)
	require.Len(t, promo.Votes, 2, "alice and bob; nothing refused was counted")
	assert.Equal(t, alice, promo.Votes[0].Actor)
	assert.Equal(t, []string{"dba"}, promo.Votes[0].Roles, "the policy's roles, not the claimed admin")
	assert.Equal(t, bob, promo.Votes[1].Actor)
	assert.Empty(t, promo.Votes[1].Roles)
}

// TestTrustControls: approvers may pause and resume; rolling back on
// request is for operators; a control request is used once.
func TestTrustControls(t *testing.T) {
	h := newTrustHarness(t)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	in := trustInput()
	in.Environments = in.Environments[:1]

	var alicePause approval.ControlInput
	h.env.RegisterDelayedCallback(func() {
		h.update("unsigned pause", approval.UpdatePause, approval.ControlInput{Actor: alice, Reason: "incident"})
		h.update("mallory pause", approval.UpdatePause, h.signedControl(mallory, approval.UpdatePause, approval.ControlInput{Actor: mallory, Reason: "incident"}))
		alicePause = h.signedControl(alice, approval.UpdatePause, approval.ControlInput{Actor: alice, Reason: "incident"})
		h.update("alice pause", approval.UpdatePause, alicePause)
	}, time.Hour)
	h.env.RegisterDelayedCallback(func() {
		assert.True(t, h.status().Paused)
		h.update("olga resume", approval.UpdateResume, h.signedControl(olga, approval.UpdateResume, approval.ControlInput{Actor: olga}))
	}, time.Hour+time.Minute)
	h.env.RegisterDelayedCallback(func() {
		require.Equal(t, "accepted", h.results["olga resume"])
		// Someone with access to the history sends alice's pause again.
		h.update("pause replay", approval.UpdatePause, alicePause)
		recased := alicePause
		p := *alicePause.Proof
		p.KeyID = "Alice@Example.com"
		recased.Proof = &p
		h.update("pause replay under another key id spelling", approval.UpdatePause, recased)
	}, time.Hour+2*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		assert.False(t, h.status().Paused, "no replay paused the rollout again")
		h.update("alice rollback", approval.UpdateRollback, h.signedControl(alice, approval.UpdateRollback, approval.ControlInput{Actor: alice, Reason: "complaints"}))
	}, time.Hour+3*time.Minute)
	h.env.RegisterDelayedCallback(func() {
		h.update("olga rollback", approval.UpdateRollback, h.signedControl(olga, approval.UpdateRollback, approval.ControlInput{Actor: olga, Reason: "complaints"}))
	}, time.Hour+4*time.Minute)

	st, err := h.run(h.input(in))
	require.NoError(t, err)

	assert.Contains(t, h.results["unsigned pause"], "is not signed")
	assert.Contains(t, h.results["mallory pause"], "mallory@example.com may not pause this rollout")
	assert.Equal(t, "accepted", h.results["alice pause"], "an approver of the rollout may pause it")
	assert.Equal(t, "accepted", h.results["olga resume"])
	assert.Contains(t, h.results["pause replay"], "replay refused")
	assert.Contains(t, h.results["pause replay under another key id spelling"], "replay refused")
	assert.Contains(t, h.results["alice rollback"], "may not roll back")
	assert.Contains(t, h.results["alice rollback"], "operators")
	assert.Equal(t, "accepted", h.results["olga rollback"])

	assert.Equal(t, StateRolledBack, st.State)
	assert.Empty(t, h.fake.constraints)
	var actions []string
	for _, d := range st.Decisions {
		actions = append(actions, d.Action+" "+d.Actor)
	}
	assert.Equal(t, []string{approval.UpdatePause + " " + alice, approval.UpdateResume + " " + olga, approval.UpdateRollback + " " + olga}, actions)
}

// TestTrustRefusalSignals: a record-refusal writes in someone's name, so
// only their own key (or the Slack handler) may sign one; others are
// dropped without a trace in the status.
func TestTrustRefusalSignals(t *testing.T) {
	h := newTrustHarness(t)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	in := trustInput()
	in.Environments = in.Environments[:1]
	refusal := func(actor string) approval.Refusal {
		return approval.Refusal{Signal: approval.UpdateDecide, Actor: actor, GateID: "staging/remediation/1", Reason: actor + " may not decide"}
	}
	h.env.RegisterDelayedCallback(func() {
		h.env.SignalWorkflow(approval.SignalRecordRefusal, refusal(alice))
		forged := refusal(alice)
		forged.Proof = h.keys.Sign(t, mallory, approval.RefusalClaim(trustWorkflowID, testRunID, forged), h.env.Now())
		h.env.SignalWorkflow(approval.SignalRecordRefusal, forged)
		otherRun := refusal(bob)
		otherRun.Proof = h.keys.Sign(t, bob, approval.RefusalClaim(trustWorkflowID, "another-run-id", otherRun), h.env.Now())
		h.env.SignalWorkflow(approval.SignalRecordRefusal, otherRun)
	}, time.Hour)
	h.env.RegisterDelayedCallback(func() {
		assert.Empty(t, h.status().Refusals, "unsigned and forged refusals are dropped")
		r := refusal(alice)
		r.Proof = h.keys.Sign(t, alice, approval.RefusalClaim(trustWorkflowID, testRunID, r), h.env.Now())
		h.env.SignalWorkflow(approval.SignalRecordRefusal, r)
	}, time.Hour+time.Minute)
	h.env.RegisterDelayedCallback(func() {
		st := h.status()
		require.Len(t, st.Refusals, 1, "alice's own signed refusal is recorded")
		assert.Equal(t, alice, st.Refusals[0].Actor)
		assert.Equal(t, "alice@example.com may not decide", st.Refusals[0].Reason)
		h.update("alice", approval.UpdateDecide, h.signed(alice, testRunID, approval.DecisionInput{GateID: "staging/remediation/1", Choice: approval.ChoiceDelete, Actor: alice}))
	}, time.Hour+2*time.Minute)

	st, err := h.run(h.input(in))
	require.NoError(t, err)
	assert.Equal(t, "accepted", h.results["alice"])
	assert.Equal(t, StateCompleted, st.State)
	assert.Len(t, st.Refusals, 1)
}

// TestTrustStartNeedsPolicy: a rollout the worker's policy refuses fails
// before anything changes.
func TestTrustStartNeedsPolicy(t *testing.T) {
	h := newTrustHarness(t)
	in := trustInput()
	in.Environments = append(in.Environments, EnvironmentInput{Name: "dr"})
	st, err := h.run(h.input(in))
	require.Error(t, err)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae))
	assert.Equal(t, ErrTypePolicy, ae.Type())
	assert.Contains(t, err.Error(), `environment "dr" has no approval policy`)
	assert.Equal(t, StateFailed, st.State)
	assert.Equal(t, []string{ActResolvePolicy + " "}, h.fake.calls, "nothing but the policy check ran")
}
