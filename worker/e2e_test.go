package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"github.com/fkrollout/fkrollout/internal/policy"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/activities"
	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

var record = flag.Bool("record", false, "write the e2e run's history to ../workflows/testdata for the replay test")

const (
	rita  = "rita@example.com"
	alice = "alice@example.com"
	bob   = "bob@example.com"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withPassword puts a password in a DSN. The local server trusts
// connections, so the password is ignored by PostgreSQL, but it is a real
// secret as far as fkrollout knows: the history scan looks for it.
func withPassword(dsn, pw string) string {
	return strings.Replace(dsn, "postgres://postgres@", "postgres://postgres:"+pw+"@", 1)
}

// seedDemo loads the demo schema and data; orphans go into staging.
func seedDemo(t *testing.T, db *pgtest.DB, orphans map[string]int) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, demo.Setup(ctx, db.Pool))
	_, err := demo.Seed(ctx, db.Pool, demo.Options{Workspaces: 2, WorkflowsPerWorkspace: 15, Seed: 7})
	require.NoError(t, err)
	for fk, n := range orphans {
		require.NoError(t, demo.InjectOrphans(ctx, db.Pool, fk, n))
	}
}

// testConfig is the worker configuration of a test: DSNs with passwords
// and a Slack token, all of which must stay out of history.
func testConfig(t *testing.T, dsns map[string]string, extra map[string]string) *config.Config {
	t.Helper()
	env := map[string]string{
		"FKROLLOUT_BACKUP_DIR":           t.TempDir(),
		"FKROLLOUT_REPORT_DIR":           t.TempDir(),
		"FKROLLOUT_SLACK_BOT_TOKEN":      "xoxb-e2e-" + randHex(8),
		"FKROLLOUT_SLACK_SIGNING_SECRET": "sign-" + randHex(8),
	}
	var names []string
	for name, dsn := range dsns {
		k := "FKROLLOUT_DSN_" + strings.ToUpper(name)
		env[k] = dsn
		names = append(names, k)
	}
	for k, v := range extra {
		env[k] = v
	}
	cfg, err := config.LoadFrom("", func(k string) (string, bool) {
		if k == "\x00names" {
			return strings.Join(names, "\n"), true
		}
		v, ok := env[k]
		return v, ok
	})
	require.NoError(t, err)
	// The E2E tests of the rollout's phases decide through the raw client:
	// development mode. The trust model has its own suite (attack_e2e_test.go).
	cfg.Policy.TrustClientIdentity = true
	// The tests of one phase turn the safeguards they do not test off
	// (skipNone, skipAllBut): the worker lets them.
	cfg.Policy.AllowSkip = policy.Safeguards
	cfg.Policy.MinWatch = "1s"
	return cfg
}

// skipAllBut is every safeguard except keep: the input of a test that
// exercises only those.
func skipAllBut(keep ...string) []string {
	var out []string
	for _, s := range policy.Safeguards {
		if !slices.Contains(keep, s) {
			out = append(out, s)
		}
	}
	return out
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// windowNow is a maintenance window open for the next two hours.
func windowNow() *rollout.MaintenanceWindow {
	return &rollout.MaintenanceWindow{Start: time.Now().UTC().Add(-time.Minute).Format("15:04"), Duration: "2h", NotifyBefore: "0s"}
}

// startRolloutWorker runs a worker in the test process on a fresh task queue
// "<queuePrefix>-<random>", with the rollout workflows and the activities
// built from cfg, n and log registered as main registers them, and stops it
// when the test ends. Each register adds registrations to the worker before
// it starts (withMonitorActivities). It returns the task queue.
func startRolloutWorker(t *testing.T, c client.Client, queuePrefix string, cfg *config.Config, n notify.Notifier, log *slog.Logger,
	register ...func(*activities.Activities, worker.Worker)) string {
	t.Helper()
	tq := queuePrefix + "-" + randHex(4)
	w := worker.New(c, tq, worker.Options{})
	workflows.Register(w)
	acts, err := activities.New(cfg, n, log)
	if err != nil {
		t.Fatal(err)
	}
	acts.SlackSigner = slackSignerPublicKey(cfg)
	t.Cleanup(acts.Close)
	acts.Register(w)
	for _, r := range register {
		r(acts, w)
	}
	require.NoError(t, w.Start(), "start worker on %s", tq)
	t.Cleanup(w.Stop)
	return tq
}

// withMonitorActivities registers the production monitor's activities on
// the rollout activities' pools and notifier, as main does.
func withMonitorActivities(acts *activities.Activities, w worker.Worker) {
	activities.NewMonitorActivities(acts, acts.Config.Monitor).Register(w)
}

// startRollout starts the rollout workflow id with input in on task queue tq.
func startRollout(t *testing.T, ctx context.Context, c client.Client, tq, id string, in rollout.Input) client.WorkflowRun {
	t.Helper()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, rollout.WorkflowName, in)
	require.NoError(t, err, "start rollout %s", id)
	return run
}

// stagingThenProduction is a rollout over staging, then production in a
// maintenance window open now.
func stagingThenProduction() []rollout.EnvironmentInput {
	return []rollout.EnvironmentInput{
		{Name: "staging"},
		{Name: "production", MaintenanceWindow: windowNow()},
	}
}

func update(ctx context.Context, c client.Client, id, name string, arg any, out any) error {
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: name, Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return err
	}
	return h.Get(ctx, out)
}

func queryStatusT(t *testing.T, ctx context.Context, c client.Client, id string) *rollout.Status {
	t.Helper()
	v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
	require.NoError(t, err)
	var st rollout.Status
	require.NoError(t, v.Get(&st))
	return &st
}

// TestE2ERolloutOverStagingAndProduction runs the demo plan over two real
// databases on a real dev server, driven by Updates, and checks the result
// against the catalog and the history for secrets.
func TestE2ERolloutOverStagingAndProduction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()

	staging, production := pgtest.New(t), pgtest.New(t)
	orphanFK := "fk_workflow_stages_workflow_instance"
	seedDemo(t, staging, map[string]int{orphanFK: 3})
	seedDemo(t, production, nil)
	pw := "pw-" + randHex(8)
	cfg := testConfig(t, map[string]string{"staging": withPassword(staging.DSN, pw), "production": withPassword(production.DSN, pw)}, nil)

	tq := startRolloutWorker(t, c, "e2e", cfg, nil, discardLogger())

	in := rollout.Input{
		Plan:         sqlassets.Migration,
		Requester:    rita,
		Environments: stagingThenProduction(),
		Skip:         skipAllBut(),
		Approval: approval.Policy{
			Default: approval.GateRule{Approvers: []string{alice, bob, rita}},
			Gates:   map[string]approval.GateRule{"promotion/production": {Approvers: []string{alice, bob, rita}, MinApprovals: 2}},
		},
	}
	id := "e2e-rollout-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)

	// Drive the gates like approvers would.
	refusals := map[string]string{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
			if err == nil {
				var st rollout.Status
				if v.Get(&st) == nil {
					if st.State.Terminal() {
						return
					}
					for _, g := range st.OpenGates {
						decideE2E(ctx, c, id, g, refusals)
					}
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	<-done

	assert.Equal(t, rollout.StateCompleted, st.State, st.Summary())
	assert.Contains(t, refusals["staging/remediation/1 "+rita], "four-eyes")
	assert.Contains(t, refusals["production/promotion/2 "+alice+" again"], "already decided")

	// The status query agrees with the catalog in both databases.
	p, err := sqlplan.ParseAuto(sqlassets.Migration)
	require.NoError(t, err)
	final := queryStatusT(t, ctx, c, id)
	for name, db := range map[string]*pgtest.DB{"staging": staging, "production": production} {
		vs, err := migrate.Verify(ctx, db.Pool, p)
		require.NoError(t, err)
		require.Len(t, vs, len(p.ForeignKeys))
		states := map[string]rollout.ConstraintState{}
		for _, c := range final.Constraints {
			states[c.Name] = c.Environments[name].State
		}
		for _, v := range vs {
			name := strings.TrimPrefix(v.FK, "public.")
			fkName := name[strings.LastIndex(name, ".")+1:]
			assert.True(t, v.Exists && v.Validated && v.SameDefinition, "%s %s: %+v", name, v.FK, v)
			assert.True(t, v.Owned, "%s owned by the rollout", v.FK)
			assert.Equal(t, id, v.OwnerRollout)
			assert.Contains(t, []rollout.ConstraintState{rollout.CValidated, rollout.CTested}, states[fkName], "%s in %s", fkName, name)
		}
		assert.Zero(t, db.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"), name)
	}
	assert.NotEmpty(t, final.Environments["staging"].Remediations)
	assert.NotEmpty(t, final.Environments["production"].Backup.Artifacts)
	assert.Positive(t, staging.Count(t, "SELECT count(*) FROM fkrollout.quarantine WHERE rollout_id = $1", id), "deleted orphans kept in quarantine")

	// No secret anywhere in the history: payloads are base64 in the JSON,
	// so the scan reads them decoded.
	hist := historyJSON(t, ctx, c, id)
	text := decodedHistory(t, hist)
	for _, s := range cfg.Secrets() {
		assert.NotContains(t, text, s)
	}
	assert.NotContains(t, text, pw)
	assert.NotContains(t, text, "postgres://")
	assert.NotContains(t, text, "xoxb-")
	assert.Contains(t, text, "fk_workflow_instances_workspace", "the scan reads decoded payloads")
	assert.Contains(t, text, "staging/remediation/1", "the scan covers update payloads")

	if *record {
		require.NoError(t, os.WriteFile("../workflows/testdata/history-e2e-rollout.json", []byte(hist), 0o644))
	}
}

// decideE2E decides a gate, trying refused decisions first.
func decideE2E(ctx context.Context, c client.Client, id string, g approval.Gate, refusals map[string]string) {
	var view approval.GateView
	try := func(key string, in approval.DecisionInput) {
		if _, seen := refusals[key]; seen {
			return
		}
		if err := update(ctx, c, id, approval.UpdateDecide, in, &view); err != nil {
			refusals[key] = err.Error()
		} else {
			refusals[key] = ""
		}
	}
	switch g.Kind {
	case notify.GateRemediation:
		try(g.ID+" "+rita, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceDelete, Actor: rita})
		try(g.ID+" "+alice, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceDelete, Actor: alice, Reason: "orphans from the 2024 import bug"})
	case notify.GatePromotion:
		try(g.ID+" "+alice, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "staging clean"})
		try(g.ID+" "+alice+" again", approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice})
		try(g.ID+" "+bob, approval.DecisionInput{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: bob, Reason: "ok"})
	default:
		try(g.ID+" "+alice, approval.DecisionInput{GateID: g.ID, Choice: g.Choices[0], Actor: alice})
	}
}

// historyJSON returns the workflow's full history as the JSON
// `temporal workflow show --output json` writes (and the replayer reads).
func historyJSON(t *testing.T, ctx context.Context, c client.Client, id string) string {
	t.Helper()
	b, err := devserver.HistoryJSON(ctx, c, id)
	require.NoError(t, err)
	return string(b)
}

var payloadData = regexp.MustCompile(`"data":\s*"([A-Za-z0-9+/=]*)"`)

// decodedHistory is the history JSON followed by every payload decoded.
func decodedHistory(t *testing.T, hist string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(hist)
	n := 0
	for _, m := range payloadData.FindAllStringSubmatch(hist, -1) {
		raw, err := base64.StdEncoding.DecodeString(m[1])
		require.NoError(t, err)
		b.WriteByte('\n')
		b.Write(raw)
		n++
	}
	require.Greater(t, n, 50, "history has payloads")
	return b.String()
}

// TestE2EAbortWithRollbackDropsOnlyTheRollout: abort at the remediation gate
// with rollback on a real database drops every constraint this rollout
// added NOT VALID and leaves a foreign key it did not create alone.
func TestE2EAbortWithRollbackDropsOnlyTheRollout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()
	staging := pgtest.New(t)
	seedDemo(t, staging, map[string]int{"fk_vendor_master_workspace": 2})
	// A constraint someone else owns, on a table the plan also touches.
	staging.Exec(t, `ALTER TABLE workflow_stages ADD CONSTRAINT keep_me CHECK (true)`)
	before := staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
	cfg := testConfig(t, map[string]string{"staging": staging.DSN}, nil)

	tq := startRolloutWorker(t, c, "e2e-abort", cfg, nil, discardLogger())

	id := "e2e-abort-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, rollout.Input{
		Plan: sqlassets.Migration, Requester: rita,
		Environments: []rollout.EnvironmentInput{{Name: "staging"}},
		Skip:         skipAllBut(),
		Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}},
	})
	waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
	p, err := sqlplan.ParseAuto(sqlassets.Migration)
	require.NoError(t, err)
	assert.Equal(t, before+int64(len(p.ForeignKeys)), staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), "all applied NOT VALID at the gate")

	// Not an operator's reason-less rollback; then the requester aborts with rollback.
	var ack approval.Ack
	err = update(ctx, c, id, approval.UpdateRollback, approval.ControlInput{Actor: alice}, &ack)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "needs a reason")
	require.NoError(t, update(ctx, c, id, approval.UpdateAbort, approval.ControlInput{Actor: rita, Reason: "wrong window", Rollback: true}, &ack))
	assert.True(t, ack.Accepted)

	st := closedWith(t, ctx, c, run, rollout.ErrTypeRolledBack)
	assert.Equal(t, rollout.StateRolledBack, st.State)
	assert.Equal(t, before, staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"), "exactly the rollout's constraints dropped")
	assert.Equal(t, int64(1), staging.Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = 'keep_me'"))
	assert.Equal(t, int64(2), staging.Count(t, "SELECT count(*) FROM vendor_master v LEFT JOIN workspaces w ON w.id = v.workspace_id WHERE w.id IS NULL"), "no row touched without a decision")
	for _, cs := range st.Constraints {
		assert.Equal(t, rollout.CRolledBack, cs.Environments["staging"].State, cs.Name)
	}
	assert.Equal(t, approval.GateCancelled, st.Gates[0].Status)
}
