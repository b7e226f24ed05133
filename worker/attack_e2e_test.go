package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// The attack suite: what someone with access to the Temporal namespace (the
// UI, the temporal CLI or an SDK client) tries against a worker running
// under a strict policy, on real databases reached through the
// non-superuser role. Every attack must be refused with a reason that says
// why, and leave the databases as they were.

const (
	olga    = "olga@example.com" // operator
	mallory = "mallory@example.com"
)

// attackLab is one worker under a strict policy, its databases and keys.
type attackLab struct {
	t    *testing.T
	ctx  context.Context
	c    client.Client
	tq   string
	keys map[string]ed25519.PrivateKey
	dbs  map[string]*pgtest.DB
	// marker, once it exists, makes the solo environment's deploy hook
	// fail: a gate after the constraints are in.
	marker string
}

func newAttackLab(t *testing.T, ctx context.Context) *attackLab {
	srv := devserver.Start(t, rollout.SearchAttributes())
	lab := &attackLab{t: t, ctx: ctx, c: srv.Client(), keys: map[string]ed25519.PrivateKey{}, dbs: map[string]*pgtest.DB{}}
	pol := policy.Config{Identities: map[string]policy.Identity{}, Operators: []string{olga}, AllowSkip: policy.Safeguards,
		Environments: map[string]policy.Environment{
			"staging":    {Approvers: []string{alice, bob}},
			"production": {Approvers: []string{alice, bob}, MinApprovals: 2, Requires: []string{"staging"}},
			"solo":       {Approvers: []string{alice, bob}},
		}}
	for _, who := range []string{rita, alice, bob, olga, mallory} {
		pub, priv, err := identity.GenerateKey()
		require.NoError(t, err)
		lab.keys[who] = priv
		if who != mallory { // mallory has a key, but the worker does not know it
			pol.Identities[who] = policy.Identity{PublicKeys: []string{identity.FormatPublicKey(pub)}}
		}
	}
	dsns := map[string]string{}
	for env, orphans := range map[string]map[string]int{
		"staging":    {"fk_workflow_stages_workflow_instance": 3},
		"production": nil,
		"solo":       nil,
	} {
		db := pgtest.New(t)
		seedDemo(t, db, orphans)
		lab.dbs[env] = db
		dsns[env] = pgtest.RoleDSN(t, db) // the worker is no superuser
	}
	cfg := testConfig(t, dsns, nil)
	cfg.Policy = pol
	lab.marker = filepath.Join(t.TempDir(), "fail-hook")
	solo := cfg.Environments["solo"]
	solo.DeployHooks = []config.Hook{{Name: "restart-app", Command: []string{"sh", "-c", "test ! -e " + lab.marker}}}
	cfg.Environments["solo"] = solo
	require.NoError(t, cfg.Validate())
	lab.tq = startRolloutWorker(t, lab.c, "attack", cfg, nil, discardLogger())
	return lab
}

// dbState is what an attack must not change: every foreign key (name and
// validation) and the row count of every table.
type dbState struct {
	FKs  []string
	Rows demo.Counts
}

func (l *attackLab) state(env string) dbState {
	l.t.Helper()
	db := l.dbs[env]
	rows, err := db.Pool.Query(l.ctx, `SELECT conname || ':' || convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY 1`)
	require.NoError(l.t, err)
	var s dbState
	for rows.Next() {
		var n string
		require.NoError(l.t, rows.Scan(&n))
		s.FKs = append(s.FKs, n)
	}
	require.NoError(l.t, rows.Err())
	s.Rows, err = demo.CountRows(l.ctx, db.Pool)
	require.NoError(l.t, err)
	return s
}

func (l *attackLab) states() map[string]dbState {
	out := map[string]dbState{}
	for env := range l.dbs {
		out[env] = l.state(env)
	}
	return out
}

func (l *attackLab) input(envs ...string) rollout.Input {
	in := rollout.Input{Plan: sqlassets.Migration, Requester: rita, Skip: skipAllBut()}
	for _, e := range envs {
		in.Environments = append(in.Environments, rollout.EnvironmentInput{Name: e})
	}
	return in
}

// signStart signs in as its requester, with who's key.
func (l *attackLab) signStart(id, who string, in *rollout.Input) {
	p := identity.Sign(l.keys[who], who, rollout.StartClaim(id, *in), identity.NewNonce(), time.Now())
	in.RequesterProof = &p
}

func (l *attackLab) start(id string, in rollout.Input) client.WorkflowRun {
	return startRollout(l.t, l.ctx, l.c, l.tq, id, in)
}

// refusedAtStart runs in and expects the rollout to fail at once with a
// policy error containing want.
func (l *attackLab) refusedAtStart(id string, in rollout.Input, want string) {
	l.t.Helper()
	err := l.start(id, in).Get(l.ctx, nil)
	require.Error(l.t, err, "the worker must refuse %s", id)
	assert.Contains(l.t, err.Error(), "PolicyError")
	assert.Contains(l.t, err.Error(), want)
}

func (l *attackLab) runID(id string) string {
	d, err := l.c.DescribeWorkflowExecution(l.ctx, id, "")
	require.NoError(l.t, err)
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
}

// decide sends a decision; signer "" sends it unsigned, keyOf chooses whose
// private key signs (to forge, a key that is not the actor's).
func (l *attackLab) decide(id string, in approval.DecisionInput, keyOf string) (approval.GateView, error) {
	if keyOf != "" {
		p := identity.Sign(l.keys[keyOf], in.Actor, approval.DecisionClaim(id, l.runID(id), in), identity.NewNonce(), time.Now())
		in.Proof = &p
	}
	var v approval.GateView
	err := update(l.ctx, l.c, id, approval.UpdateDecide, in, &v)
	return v, err
}

func (l *attackLab) control(id, kind string, in approval.ControlInput, keyOf string) error {
	if keyOf != "" {
		p := identity.Sign(l.keys[keyOf], in.Actor, approval.ControlClaim(id, l.runID(id), kind, in), identity.NewNonce(), time.Now())
		in.Proof = &p
	}
	var ack approval.Ack
	return update(l.ctx, l.c, id, kind, in, &ack)
}

func (l *attackLab) waitGate(id, gate string) *rollout.Status {
	l.t.Helper()
	var st *rollout.Status
	require.Eventually(l.t, func() bool {
		st = queryStatusT(l.t, l.ctx, l.c, id)
		require.False(l.t, st.State.Terminal(), "rollout %s ended before gate %s: %s", id, gate, st.Summary())
		for _, g := range st.OpenGates {
			if g.ID == gate {
				return true
			}
		}
		return false
	}, 90*time.Second, 200*time.Millisecond, "gate %s of %s never opened", gate, id)
	return st
}

func TestE2EAttacksAreRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	lab := newAttackLab(t, ctx)
	initial := lab.states()

	t.Run("policy from the input is refused at start, before anything changes", func(t *testing.T) {
		cases := []struct {
			name string
			edit func(in *rollout.Input)
			want string
		}{
			{"SQL in the perf workload, aimed at production", func(in *rollout.Input) {
				in.Perf = &rollout.PerfInput{Enabled: true, Environment: "production",
					WorkloadYAML: "operations:\n  - name: x\n    sql: DROP TABLE workspaces CASCADE\n"}
			}, "inline SQL is not accepted"},
			{"the requester may approve", func(in *rollout.Input) {
				in.Approval.Default = approval.GateRule{AllowRequester: true}
			}, "allow_requester"},
			{"a timeout deletes orphans", func(in *rollout.Input) {
				in.Approval.Gates = map[string]approval.GateRule{"remediation": {Timeout: "1s", OnTimeout: approval.ChoiceDelete}}
			}, "would proceed without a person"},
			{"a timeout approves production", func(in *rollout.Input) {
				in.Approval.Gates = map[string]approval.GateRule{"promotion/production": {Timeout: "1s", OnTimeout: approval.ChoiceApprove}}
			}, "would proceed without a person"},
			{"the requester names the approvers", func(in *rollout.Input) {
				in.Approval.Default = approval.GateRule{Approvers: []string{mallory}}
			}, `"mallory@example.com" may not approve`},
			{"the requester names the operators", func(in *rollout.Input) {
				in.Approval.Operators = []string{mallory}
			}, "is not an operator"},
			{"production without staging first", func(in *rollout.Input) {
				in.Environments = []rollout.EnvironmentInput{{Name: "production"}}
			}, `requires "staging" earlier`},
			{"an environment without approvers", func(in *rollout.Input) {
				in.Environments = append(in.Environments, rollout.EnvironmentInput{Name: "qa"})
			}, `"qa" has no approval policy`},
			{"a start signed by someone else", func(in *rollout.Input) {}, "requester_proof"},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				id := fmt.Sprintf("attack-start-%d-%s", i, randHex(3))
				in := lab.input("staging", "production")
				c.edit(&in)
				signer := rita
				if strings.Contains(c.name, "someone else") {
					signer = mallory
				}
				lab.signStart(id, signer, &in)
				lab.refusedAtStart(id, in, c.want)
			})
		}
		assert.Equal(t, initial, lab.states(), "no database changed")
	})

	t.Run("gate decisions and controls need a proven identity", func(t *testing.T) {
		id := "attack-gates-" + randHex(3)
		in := lab.input("staging", "production")
		lab.signStart(id, rita, &in)
		run := lab.start(id, in)
		gate := "staging/remediation/1"
		lab.waitGate(id, gate)
		atGate := lab.states() // the NOT VALID constraints are in; orphans are still there
		require.Equal(t, initial["staging"].Rows, atGate["staging"].Rows)

		del := approval.DecisionInput{GateID: gate, Choice: approval.ChoiceDelete, Actor: alice, Reason: "cleanup"}
		refused := []struct {
			name  string
			in    approval.DecisionInput
			keyOf string
			want  string
		}{
			{"unsigned, as alice from 'slack' with roles", func() approval.DecisionInput {
				d := del
				d.Via, d.SlackUser, d.Roles = "slack", "U0ALICE", []string{"dba"}
				return d
			}(), "", "is not signed"},
			{"signed with mallory's key as alice", del, mallory, "signature does not match"},
			{"signed by alice but claiming a Slack user", func() approval.DecisionInput {
				d := del
				d.SlackUser = "U0ALICE"
				return d
			}(), alice, "only from the worker's Slack handler"},
			{"mallory with her own key", func() approval.DecisionInput { d := del; d.Actor = mallory; return d }(), mallory, "not an identity"},
			{"the requester, proven", func() approval.DecisionInput { d := del; d.Actor = rita; return d }(), rita, "four-eyes"},
		}
		for _, r := range refused {
			t.Run(r.name, func(t *testing.T) {
				_, err := lab.decide(id, r.in, r.keyOf)
				require.Error(t, err)
				assert.Contains(t, err.Error(), r.want)
			})
		}
		// A proof made for another run (or replayed) does not count.
		other := identity.Sign(lab.keys[alice], alice, approval.DecisionClaim(id, "another-run", del), identity.NewNonce(), time.Now())
		d := del
		d.Proof = &other
		var v approval.GateView
		err := update(ctx, lab.c, id, approval.UpdateDecide, d, &v)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "signature does not match")

		// Controls: unsigned abort, a stranger's pause, an approver's rollback.
		err = lab.control(id, approval.UpdateAbort, approval.ControlInput{Actor: olga, Reason: "x"}, "")
		assert.ErrorContains(t, err, "is not signed")
		err = lab.control(id, approval.UpdatePause, approval.ControlInput{Actor: mallory}, mallory)
		assert.ErrorContains(t, err, "not an identity")
		err = lab.control(id, approval.UpdateRollback, approval.ControlInput{Actor: alice, Reason: "x"}, alice)
		assert.ErrorContains(t, err, "operators")

		// Forged refusal records are dropped.
		before := len(queryStatusT(t, ctx, lab.c, id).Refusals)
		require.NoError(t, lab.c.SignalWorkflow(ctx, id, "", approval.SignalRecordRefusal,
			approval.Refusal{Signal: "slack:approve", Actor: bob, GateID: gate, Reason: "<!channel> forged"}))
		require.NoError(t, lab.c.SignalWorkflow(ctx, id, "", approval.SignalDecide, del)) // unsigned decide signal: refused, recorded
		require.Eventually(t, func() bool { return len(queryStatusT(t, ctx, lab.c, id).Refusals) == before+1 }, 10*time.Second, 100*time.Millisecond)
		for _, r := range queryStatusT(t, ctx, lab.c, id).Refusals {
			assert.NotContains(t, r.Reason, "forged", "an unsigned record-refusal is never kept")
		}

		assert.Equal(t, atGate, lab.states(), "no refused request changed a database")
		st := queryStatusT(t, ctx, lab.c, id)
		require.Len(t, st.OpenGates, 1, "the gate is still open")

		// The operator, proven, stops it and drops what this run created.
		require.NoError(t, lab.control(id, approval.UpdateAbort, approval.ControlInput{Actor: olga, Reason: "attack drill", Rollback: true}, olga))
		_ = run.Get(ctx, nil)
		assert.Equal(t, initial, lab.states(), "the rollback left the databases as they were")
	})

	t.Run("a requester who names someone else still needs two other approvers", func(t *testing.T) {
		// alice starts a rollout in bob's name without a signature, then
		// approves her own remediation: one vote is not enough.
		id := "attack-requester-" + randHex(3)
		in := lab.input("staging", "production")
		in.Requester = bob
		run := lab.start(id, in)
		gate := "staging/remediation/1"
		lab.waitGate(id, gate)
		v, err := lab.decide(id, approval.DecisionInput{GateID: gate, Choice: approval.ChoiceDelete, Actor: alice, Reason: "mine"}, alice)
		require.NoError(t, err)
		assert.Equal(t, 1, v.Waiting, "an unverified requester makes every proceeding choice need two distinct approvers")
		assert.Equal(t, initial["staging"].Rows, lab.state("staging").Rows, "no orphan was deleted on one vote")
		require.NoError(t, lab.control(id, approval.UpdateAbort, approval.ControlInput{Actor: olga, Reason: "drill", Rollback: true}, olga))
		_ = run.Get(ctx, nil)
		assert.Equal(t, initial, lab.states())
	})

	t.Run("a reused workflow id does not take over the earlier run's constraints", func(t *testing.T) {
		id := "attack-reuse-" + randHex(3)
		in := lab.input("solo")
		lab.signStart(id, rita, &in)
		var first rollout.Status
		require.NoError(t, lab.start(id, in).Get(ctx, &first))
		require.Equal(t, rollout.StateCompleted, first.State, first.Summary())
		created := lab.state("solo")
		require.NotEqual(t, initial["solo"].FKs, created.FKs, "the first run created the constraints")

		// Same id again (the raw client allows it). Its deploy hook fails,
		// so it stops at a gate after "applying" (the constraints exist: not
		// its own), and the operator rolls it back.
		require.NoError(t, os.WriteFile(lab.marker, nil, 0o600))
		lab.signStart(id, rita, &in)
		run, err := lab.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: lab.tq,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE}, rollout.WorkflowName, in)
		require.NoError(t, err)
		st := lab.waitGate(id, "solo/approval/1")
		require.NotEmpty(t, st.Environments["solo"].Applied)
		for _, c := range st.Environments["solo"].Applied {
			assert.Equal(t, "exists-same", c.Action, "%s: the second run owns nothing", c.FK)
		}
		require.NoError(t, lab.control(id, approval.UpdateRollback, approval.ControlInput{Actor: olga, Reason: "takeover drill"}, olga))
		// Rolled back: the run closes failed (RolledBack), its status in the details.
		second, ok := rollout.OutcomeStatus(run.Get(ctx, nil))
		require.True(t, ok, "a rolled-back run carries its status")
		assert.Equal(t, created, lab.state("solo"), "the second run dropped nothing the first created")
		require.NotNil(t, second.Rollback)
		assert.Empty(t, second.Rollback.Dropped, "nothing is reported dropped")
	})
}
