package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// registerStubs stands in for the engine so these tests are about the CLI
// against a real server: one constraint, with the given orphans until
// remediated (shared by every rollout the worker runs).
func registerStubs(w worker.Worker, orphans int64, pol policy.Config) {
	var mu sync.Mutex
	fk := plan.ForeignKey{Name: "fk_a_b", Table: plan.TableName{Schema: "public", Name: "a"}, Columns: []string{"b_id"},
		RefTable: plan.TableName{Schema: "public", Name: "b"}, RefColumns: []string{"id"}, Priority: plan.PriorityHigh}
	reg := func(name string, fn any) { w.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	// The real policy check, on the test's policy.
	reg(rollout.ActResolvePolicy, func(ctx context.Context, req rollout.PolicyRequest) (*approval.EffectivePolicy, error) {
		eff, err := rollout.ResolvePolicy(pol, req, "", time.Now())
		if err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), rollout.ErrTypePolicy, nil)
		}
		return eff, nil
	})
	reg(rollout.ActParsePlan, func(ctx context.Context, in rollout.ParsePlanInput) (rollout.ParsePlanResult, error) {
		return rollout.ParsePlanResult{Plan: plan.Plan{Name: "cli", ForeignKeys: []plan.ForeignKey{fk}}}, nil
	})
	reg(rollout.ActCheckPlan, func(ctx context.Context, in rollout.EnvInput) (rollout.CheckResult, error) {
		return rollout.CheckResult{}, nil
	})
	reg(rollout.ActTakeStats, func(ctx context.Context, in rollout.StatsInput) (rollout.StatsResult, error) {
		return rollout.StatsResult{Snapshot: json.RawMessage(`{}`)}, nil
	})
	reg(rollout.ActAudit, func(ctx context.Context, in rollout.AuditInput) ([]rollout.AuditFigure, error) {
		mu.Lock()
		defer mu.Unlock()
		return []rollout.AuditFigure{{FK: fk.Name, Orphans: orphans, Samples: []string{`{"b_id":"x"}`}}}, nil
	})
	reg(rollout.ActBackup, func(ctx context.Context, in rollout.BackupInput) (rollout.BackupResult, error) {
		return rollout.BackupResult{}, nil
	})
	reg(rollout.ActApplyConstraint, func(ctx context.Context, in rollout.ConstraintInput) (rollout.ConstraintResult, error) {
		return rollout.ConstraintResult{FK: in.FK.Name, Action: "created"}, nil
	})
	reg(rollout.ActRemediate, func(ctx context.Context, in rollout.RemediateInput) (rollout.RemediationResult, error) {
		mu.Lock()
		defer mu.Unlock()
		n := orphans
		orphans = 0
		return rollout.RemediationResult{FK: in.FK.Name, Mode: in.Mode, Affected: n, Quarantined: n}, nil
	})
	reg(rollout.ActValidateConstraint, func(ctx context.Context, in rollout.ConstraintInput) (rollout.ConstraintResult, error) {
		return rollout.ConstraintResult{FK: in.FK.Name, Action: "validated"}, nil
	})
	reg(rollout.ActRemediationImpact, func(ctx context.Context, in rollout.ImpactInput) (rollout.Impact, error) {
		return rollout.Impact{FK: in.FK.Name, Orphans: orphans, Nullable: true}, nil
	})
	reg(rollout.ActQuarantine, func(ctx context.Context, in rollout.QuarantineInput) (rollout.QuarantineResult, error) {
		return rollout.QuarantineResult{}, nil
	})
	reg(rollout.ActRunBehaviourTests, func(ctx context.Context, in rollout.BehaviourInput) ([]rollout.BehaviourResult, error) {
		return []rollout.BehaviourResult{{FK: fk.Name, Passed: true}}, nil
	})
	reg(rollout.ActRollback, func(ctx context.Context, in rollout.RollbackInput) ([]rollout.ConstraintResult, error) {
		return []rollout.ConstraintResult{{FK: fk.Name, Action: "dropped"}}, nil
	})
	reg(rollout.ActRunDeployHooks, func(ctx context.Context, in rollout.HooksInput) ([]rollout.HookResult, error) { return nil, nil })
	reg(rollout.ActRunSmokeChecks, func(ctx context.Context, in rollout.HooksInput) ([]rollout.SmokeResult, error) { return nil, nil })
	reg(rollout.ActCheckExpectations, func(ctx context.Context, in rollout.ExpectInput) ([]rollout.ExpectationResult, error) {
		return nil, nil
	})
	reg(rollout.ActExportOrphans, func(ctx context.Context, in rollout.ExportOrphansInput) ([]rollout.OrphanExport, error) {
		return nil, nil
	})
	reg(steps.ActNotify, func(ctx context.Context, ev notify.Event) (notify.Receipt, error) { return notify.Receipt{}, nil })
	reg(rollout.ActPublishReport, func(ctx context.Context, in rollout.ReportInput) (rollout.ReportResult, error) {
		return rollout.ReportResult{Path: "/reports/" + in.RolloutID + ".md", Posted: true}, nil
	})
}

// devPolicy is development mode: the CLI tests of the gates' rules send
// unsigned decisions; TestCLISignedDecisions covers the signed path.
var devPolicy = policy.Config{TrustClientIdentity: true, AllowSkip: policy.Safeguards}

// skipAll turns every safeguard off: the stub worker has no perf workload,
// no monitor sources, and these tests are about gates.
var skipAll = []string{"--skip", strings.Join(policy.Safeguards, ",")}

func starterRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCLIAgainstDevServer drives a rollout with the CLI only: start, a
// refused approval (four-eyes) with its reason and exit 3, status, the
// remediation and promotion decisions, unknown rollouts, and the search
// attributes the workflow keeps.
func TestCLIAgainstDevServer(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	tq := "cli-test"
	w := worker.New(srv.Client(), tq, worker.Options{})
	workflows.Register(w)
	registerStubs(w, 2, devPolicy)
	require.NoError(t, w.Start())
	defer w.Stop()

	// A comment-only plan is refused before anything starts, naming the file.
	emptyPlan := filepath.Join(t.TempDir(), "empty.sql")
	require.NoError(t, os.WriteFile(emptyPlan, []byte("-- TODO: the keys\n"), 0o600))
	code, _, errOut := starterRun(t, "start", "--plan", emptyPlan, "--id", "cli-empty", "--requester", "rita",
		"--approvers", "alice,bob", "--environments", "staging", "--task-queue", tq)
	assert.NotZero(t, code)
	assert.Contains(t, errOut, "empty.sql: plan is empty")

	planFile := filepath.Join(t.TempDir(), "plan.sql")
	require.NoError(t, os.WriteFile(planFile, []byte("-- the stub parses it\nALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;"), 0o600))
	code, out, errOut := starterRun(t, append([]string{"start", "--plan", planFile, "--id", "cli-rollout", "--requester", "rita",
		"--approvers", "alice,bob", "--environments", "staging,production", "--task-queue", tq, "--ui", "http://ui.test"}, skipAll...)...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "rollout started: cli-rollout")
	assert.Contains(t, out, "http://ui.test/namespaces/default/workflows/cli-rollout")

	code, _, errOut = starterRun(t, append([]string{"start", "--plan", planFile, "--id", "cli-rollout", "--requester", "rita", "--task-queue", tq}, skipAll...)...)
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "already exists")

	waitGate := func(id string) {
		require.Eventually(t, func() bool {
			_, out, _ := starterRun(t, "status", "cli-rollout")
			return strings.Contains(out, "open gate "+id)
		}, 30*time.Second, 200*time.Millisecond, "gate %s never opened", id)
	}
	waitGate("staging/remediation/1")

	code, _, errOut = starterRun(t, "remediate", "cli-rollout", "staging/remediation/1", "delete", "--actor", "rita")
	assert.Equal(t, 3, code, "a decision the workflow refuses is an error")
	assert.Contains(t, errOut, "four-eyes")
	code, _, errOut = starterRun(t, "approve", "cli-rollout", "staging/remediation/1", "--actor", "mallory")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "not offered")
	code, out, errOut = starterRun(t, "remediate", "cli-rollout", "staging/remediation/1", "delete", "--actor", "alice", "--reason", "import bug")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "decided: delete")

	waitGate("production/promotion/2")
	code, _, errOut = starterRun(t, "approve", "cli-rollout", "production/promotion/2", "--actor", "mallory")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "not an allowed approver")

	// status shows the gate block: who, votes, deadline, and the exact
	// ways to decide it.
	_, out, _ = starterRun(t, "status", "cli-rollout")
	for _, want := range []string{"rollout cli-rollout: waiting-for-approval · phase promotion · staging → production",
		"Who: alice, bob; 1 distinct approval(s) to proceed; not rita (requester) except reject",
		"Last refused: mallory: mallory is not an allowed approver",
		`{"gate_id":"production/promotion/2","choice":"approve","actor":"you@example.com","reason":"why","via":"ui"}`,
		`CLI: fkrollout decide cli-rollout production/promotion/2 approve --reason "…"`} {
		assert.Contains(t, out, want)
	}

	// Search attributes are visible to list queries while the gate is open;
	// RolloutEnvironment names production only once work there starts.
	c := srv.Client()
	count := func(q string) int64 {
		n, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: q})
		if err != nil {
			return -1
		}
		return n.Count
	}
	require.Eventually(t, func() bool {
		return count("RolloutStatus = 'waiting-for-approval' AND Requester = 'rita' AND RolloutEnvironment = 'staging' AND RolloutPhase = 'promotion'") == 1
	}, 15*time.Second, 200*time.Millisecond, "search attributes not upserted")
	assert.Zero(t, count("RolloutEnvironment = 'production'"), "production named while its promotion gate is open")

	code, out, errOut = starterRun(t, "approve", "cli-rollout", "production/promotion/2", "--actor", "bob", "--reason", "staging clean", "--json")
	require.Equal(t, 0, code, errOut)
	var view approval.GateView
	require.NoError(t, json.Unmarshal([]byte(out), &view), out)
	assert.Contains(t, view.Message, "decided: approve")

	// --json: one document on stdout (the final status), the timeline on
	// stderr.
	code, out, errOut = starterRun(t, "watch", "cli-rollout", "--every", "100ms", "--json")
	require.Equal(t, 0, code, errOut)
	var final rollout.Status
	require.NoError(t, json.Unmarshal([]byte(out), &final), out)
	assert.Equal(t, rollout.StateCompleted, final.State)
	assert.Contains(t, errOut, "rollout completed")
	code, out, errOut = starterRun(t, "status", "cli-rollout", "--json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &final), out)
	assert.Equal(t, "cli-rollout", final.RolloutID)

	if *record {
		writeHistory(t, c, "cli-rollout", "../workflows/testdata/history-cli-rollout.json")
	}

	// The completion report, from the finished rollout's result.
	reportFile := filepath.Join(t.TempDir(), "out", "report.md")
	code, out, errOut = starterRun(t, "report", "cli-rollout", "--out", reportFile)
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{"# ✅ FK Rollout cli — COMPLETED", "| staging/remediation/1 | delete | alice | cli | import bug |",
		"| production/promotion/2 | approve | bob | cli | staging clean |", "## Success Metrics",
		// The CLI records what the validator refused, like the Slack path.
		"3 refused attempt(s)", "rita on staging/remediation/1 refused — four-eyes", "mallory on production/promotion/2 refused"} {
		assert.Contains(t, out, want)
	}
	saved, err := os.ReadFile(reportFile)
	require.NoError(t, err)
	assert.Equal(t, out, string(saved))
	code, _, errOut = starterRun(t, "report", "no-such-rollout")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, `no rollout with id "no-such-rollout"`)

	code, _, errOut = starterRun(t, "status", "no-such-rollout")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, `no rollout with id "no-such-rollout"`)
	code, _, errOut = starterRun(t, "pause", "no-such-rollout", "--actor", "alice")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "no-such-rollout")
}

var record = flag.Bool("record", false, "write the run's history to ../workflows/testdata for the replay test")

// writeHistory saves a workflow's history as `temporal workflow show
// --output json` does, the format the replayer reads.
func writeHistory(t *testing.T, c client.Client, id, path string) {
	t.Helper()
	b, err := devserver.HistoryJSON(context.Background(), c, id)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}

// TestInteractiveFollowOnDevServer: the live progress display and gates
// decided at the terminal (a scripted terminal: an unknown choice, then
// set-null, then Enter for the default), as the demo approvers.
func TestInteractiveFollowOnDevServer(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	tq := "cli-interactive"
	w := worker.New(srv.Client(), tq, worker.Options{})
	workflows.Register(w)
	registerStubs(w, 2, devPolicy)
	require.NoError(t, w.Start())
	defer w.Stop()

	planFile := filepath.Join(t.TempDir(), "plan.sql")
	require.NoError(t, os.WriteFile(planFile, []byte("-- the stub parses it\nALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;"), 0o600))
	code, startOut, errOut := starterRun(t, append([]string{"start", "--plan", planFile, "--id", "cli-interactive", "--requester", "rita",
		"--approvers", demoApprover + "," + demoApprover2, "--min-approvals-last", "2", "--environments", "staging,production", "--task-queue", tq, "--json"}, skipAll...)...)
	require.Equal(t, 0, code, errOut)
	var started map[string]string
	require.NoError(t, json.Unmarshal([]byte(startOut), &started), startOut)
	assert.Equal(t, "cli-interactive", started["workflow_id"])
	assert.NotEmpty(t, started["run_id"])
	assert.Equal(t, "http://localhost:8233/namespaces/default/workflows/cli-interactive", started["ui"])

	var out bytes.Buffer
	f := &follower{c: srv.Client(), id: "cli-interactive", out: &out, live: true, every: 100 * time.Millisecond,
		gates: gatesAsk, in: bufio.NewReader(strings.NewReader("bogus\nset-null\n\n")), ui: "http://ui.test/x"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.run(ctx))

	got := out.String()
	assert.Contains(t, got, "── gate staging/remediation/1 ──")
	assert.Contains(t, got, `"bogus" is not offered here`)
	assert.Contains(t, got, "── gate production/promotion/2 ──")
	assert.Contains(t, got, "\x1b[", "the frame is redrawn in place")
	assert.Contains(t, got, "UI: http://ui.test/x")
	assert.Contains(t, got, "[████████████████████]  1/1", "a full progress bar once an environment is done")
	assert.Contains(t, got, "rollout cli-interactive: completed")

	st, err := queryStatus(ctx, srv.Client(), "cli-interactive")
	require.NoError(t, err)
	var votes []string
	for _, d := range st.Decisions {
		votes = append(votes, d.GateID+" "+d.Action+" "+d.Actor+" "+d.Via)
	}
	assert.Equal(t, []string{
		"staging/remediation/1 set-null " + demoApprover + " cli-interactive",
		"production/promotion/2 approve " + demoApprover + " cli-interactive",
		"production/promotion/2 approve " + demoApprover2 + " cli-interactive",
	}, votes, "the typed choice, then Enter (the default) with the second demo approver's vote")
}
