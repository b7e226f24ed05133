package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/engine/expect"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/smoke"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestE2ERunbookChecks runs the demo plan on a real dev server and
// PostgreSQL with the runbook's checks configured: the orphan export the
// remediation gate links, the expected figures (one of them wrong, taken
// past at its gate), a create → query smoke chain against a real HTTP
// application with its cleanup and a log line, and the report that shows
// all of it. The history carries paths and counts, never the exported rows.
func TestE2ERunbookChecks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()

	staging := pgtest.New(t)
	seedDemo(t, staging, map[string]int{"fk_workflow_stages_workflow_instance": 3})
	// A stage name only the export may show: the history must not.
	staging.Exec(t, `UPDATE workflow_stages SET stage_name = 'exported-only-' || id
		WHERE NOT EXISTS (SELECT 1 FROM workflow_instances wi WHERE wi.id = workflow_stages.workflow_instance_id)`)

	app := &checkedApp{logPath: filepath.Join(t.TempDir(), "app.log")}
	require.NoError(t, os.WriteFile(app.logPath, nil, 0o644))
	appSrv := httptest.NewServer(app)
	defer appSrv.Close()

	cfg := testConfig(t, map[string]string{"staging": staging.DSN}, nil)
	cfg.Audit.ExportColumns = map[string][]string{"workflow_stages": {"stage_name"}}
	zero, eq := "0", func(s string) *string { return &s }
	env := cfg.Environments["staging"]
	env.Expect = expect.Config{ForeignKeys: plan.AtLeast(1), Orphans: plan.Exactly(0), Tables: plan.Exactly(999),
		Queries: []expect.Query{{Name: "stages without an instance", ExpectValue: &zero,
			SQL: "SELECT count(*) FROM workflow_stages s WHERE NOT EXISTS (SELECT 1 FROM workflow_instances wi WHERE wi.id = s.workflow_instance_id)"}}}
	env.SmokeChecks = []smoke.Check{
		{Name: "create stage", Method: "POST", URL: appSrv.URL + "/stages?rollout=${rollout_id}", ExpectStatus: 201,
			Capture: map[string]smoke.Capture{"stage_id": {JSON: "id"}}},
		{Name: "query stage", URL: appSrv.URL + "/stages/${stage_id}", ExpectBody: []smoke.Assertion{{JSON: "id", Equals: eq("${stage_id}")}}},
		{Name: "orphan insert is the FK error", Method: "POST", URL: appSrv.URL + "/stages?instance=missing", ExpectStatus: 400,
			ExpectBody: []smoke.Assertion{{JSON: "error.code", Equals: eq("FK_VIOLATION")}},
			ExpectLog:  &smoke.LogCheck{File: app.logPath, Pattern: `caught FK violation`, Within: "3s"}},
	}
	env.SmokeCleanup = []smoke.Check{{Name: "delete stage", Method: "DELETE", URL: appSrv.URL + "/stages/${stage_id}", ExpectStatus: 204}}
	cfg.Environments["staging"] = env
	require.NoError(t, cfg.Validate())

	tq := startRolloutWorker(t, c, "checks", cfg, nil, discardLogger())
	in := rollout.Input{Plan: sqlassets.Migration, Requester: rita, Skip: skipAllBut(), Environments: []rollout.EnvironmentInput{{Name: "staging"}},
		Approval: approval.Policy{Default: approval.GateRule{Approvers: []string{alice, bob, rita}}}}
	id := "e2e-checks-" + randHex(4)
	run := startRollout(t, ctx, c, tq, id, in)

	var gates sync.Map // gate id → title/summary, as the approvers saw it
	go func() {
		for ctx.Err() == nil {
			st, err := queryStatus(ctx, c, id)
			if err == nil && st.State.Terminal() {
				return
			}
			if err == nil {
				for _, g := range st.OpenGates {
					if _, seen := gates.LoadOrStore(g.ID, g.Title+"\n"+g.Summary); seen {
						continue
					}
					choice := approval.ChoiceContinue
					if g.Kind == notify.GateRemediation {
						choice = approval.ChoiceDelete
					}
					var view approval.GateView
					_ = update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: g.ID, Choice: choice, Actor: alice, Reason: "checked"}, &view)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	assert.Equal(t, rollout.StateCompleted, st.State, st.Summary())

	// The remediation gate linked the full export; the file lists every orphan.
	rem, _ := gates.Load("staging/remediation/1")
	require.NotNil(t, rem, "the remediation gate opened")
	rep := st.Environments["staging"]
	require.Len(t, rep.OrphanExports, 1)
	ex := rep.OrphanExports[0]
	assert.Contains(t, rem, "full list: "+ex.Path+" (3 rows)")
	assert.Equal(t, filepath.Join(cfg.BackupDirFor("staging"), id, "staging", "orphans", "round-2", "fk_workflow_stages_workflow_instance.csv"), ex.Path)
	f, err := os.Open(ex.Path)
	require.NoError(t, err)
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Len(t, recs, 4)
	assert.Equal(t, []string{"id", "workflow_instance_id", "stage_name"}, recs[0])
	for _, r := range recs[1:] {
		assert.True(t, strings.HasPrefix(r[2], "exported-only-"), "context column: %v", r)
	}

	// The wrong figure opened its gate with the figures; the rest held.
	figs, _ := gates.Load("staging/approval/2")
	require.NotNil(t, figs, "the expected-figures gate opened")
	assert.Contains(t, figs, "expected figures not met in staging: Tables: = 999 expected")
	held := map[string]bool{}
	for _, r := range rep.Expectations {
		held[r.Name] = r.OK
	}
	assert.Equal(t, map[string]bool{"Validated foreign keys": true, "Orphaned rows (planned constraints)": true, "Tables": false,
		"Runbook query stages without an instance": true}, held)

	// The smoke chain ran against the application and cleaned up after itself.
	require.Len(t, rep.Smoke, 4)
	for _, s := range rep.Smoke {
		assert.True(t, s.OK, "%s: %v %s", s.Name, s.Failures, s.Detail)
	}
	assert.Equal(t, []string{"DELETE /stages/st-1"}, app.deletes())
	assert.Contains(t, app.created(), "rollout="+id)

	// The report says all of it.
	md, err := os.ReadFile(st.ReportPath)
	require.NoError(t, err)
	for _, want := range []string{
		"| stats-after | Tables (staging) | expected by the worker configuration | = 999 |",
		"| smoke-checks | Uptime (staging, smoke checks) |",
		"expected figure not met and taken past: Tables",
		"## Backups and artefacts",
		"orphans of fk_workflow_stages_workflow_instance, audit round 2",
	} {
		assert.Contains(t, string(md), want)
	}

	// The history holds the export's path and counts, not its rows, and no
	// secret of the worker.
	hist := historyJSON(t, ctx, c, id)
	text := decodedHistory(t, hist)
	assert.Contains(t, text, ex.Path)
	for _, r := range recs[1:] {
		assert.NotContains(t, text, r[2], "an exported row reached the history")
	}
	for _, s := range cfg.Secrets() {
		assert.NotContains(t, text, s)
	}
	if *record {
		require.NoError(t, os.WriteFile("../workflows/testdata/history-checks-runbook.json", []byte(hist), 0o644))
	}
}

// queryStatus is the status query, or its error (the test's driver
// polls through transient ones).
func queryStatus(ctx context.Context, c client.Client, id string) (*rollout.Status, error) {
	v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
	if err != nil {
		return nil, err
	}
	var st rollout.Status
	return &st, v.Get(&st)
}

// checkedApp is the application the smoke checks talk to: it creates a
// stage, answers an orphan insert with the FK error (and logs it), and
// deletes what the cleanup names.
type checkedApp struct {
	mu      sync.Mutex
	logPath string
	posts   []string
	deleted []string
}

func (a *checkedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case r.Method == http.MethodPost && r.URL.Query().Get("instance") == "missing":
		f, err := os.OpenFile(a.logPath, os.O_APPEND|os.O_WRONLY, 0)
		if err == nil {
			fmt.Fprintln(f, "caught FK violation fk_workflow_stages_workflow_instance: answered 400")
			f.Close()
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"FK_VIOLATION","message":"workflow instance missing does not exist"}}`)
	case r.Method == http.MethodPost:
		a.posts = append(a.posts, r.URL.RawQuery)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"st-1"}`)
	case r.Method == http.MethodGet:
		fmt.Fprintf(w, `{"id":%q}`, strings.TrimPrefix(r.URL.Path, "/stages/"))
	case r.Method == http.MethodDelete:
		a.deleted = append(a.deleted, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *checkedApp) deletes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.deleted...)
}

func (a *checkedApp) created() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.posts, " ")
}
