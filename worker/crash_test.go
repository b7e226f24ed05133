package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"

	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestWorkerKilledDuringValidation kills the worker process (SIGKILL) while
// VALIDATE CONSTRAINT is running and starts a new one: the rollout must
// complete with every constraint present exactly once and validated. Three
// runs, each on fresh databases.
func TestWorkerKilledDuringValidation(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "worker")
	build := exec.Command("go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build worker: %s", out)
	srv := devserver.Start(t, rollout.SearchAttributes())
	for i := 1; i <= 3; i++ {
		t.Run(fmt.Sprintf("run%d", i), func(t *testing.T) { crashOnce(t, srv, bin) })
	}
}

type workerProc struct {
	cmd *exec.Cmd
	log *bytes.Buffer
}

func startWorker(t *testing.T, bin string, env []string) *workerProc {
	t.Helper()
	var buf bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	require.NoError(t, cmd.Start())
	p := &workerProc{cmd: cmd, log: &buf}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("worker %d log:\n%s", cmd.Process.Pid, buf.String())
		}
	})
	return p
}

func (p *workerProc) kill9(t *testing.T) {
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	_ = p.cmd.Wait()
}

func crashOnce(t *testing.T, srv *testsuite.DevServer, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srv.Client()
	db := pgtest.New(t)
	// One orphan holds the rollout at the remediation gate after every
	// constraint is in NOT VALID: the moment to take the blocking lock.
	seedDemo(t, db, map[string]int{"fk_workflow_stages_workflow_instance": 1})
	p, err := sqlplan.ParseAuto(sqlassets.Migration)
	require.NoError(t, err)
	first := p.Sorted()[0]

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "fkrollout.yaml")
	// Short lock timeouts, many attempts: VALIDATE keeps retrying while the
	// test holds its lock.
	require.NoError(t, os.WriteFile(cfgPath, []byte("lock:\n  lock_timeout: 200ms\n  attempts: 400\n  base_backoff: 50ms\n  max_backoff: 200ms\npolicy:\n  trust_client_identity: true\n  allow_skip: [perf, monitor, window, full_backup]\n"), 0o600))
	tq := "crash-" + randHex(4)
	env := []string{
		"TEMPORAL_ADDRESS=" + srv.FrontendHostPort(),
		"TEMPORAL_NAMESPACE=default",
		"FKROLLOUT_CONFIG=" + cfgPath,
		"FKROLLOUT_DSN_STAGING=" + db.DSN,
		"FKROLLOUT_TASK_QUEUE=" + tq,
		"FKROLLOUT_BACKUP_DIR=" + filepath.Join(dir, "backups"),
		"FKROLLOUT_REPORT_DIR=" + filepath.Join(dir, "reports"),
	}
	w1 := startWorker(t, bin, env)

	id := "crash-" + randHex(4)
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, rollout.WorkflowName, rollout.Input{
		Plan: sqlassets.Migration, Requester: rita,
		Environments: []rollout.EnvironmentInput{{Name: "staging"}},
		Skip:         skipAllBut(),
		Approval:     approval.Policy{Default: approval.GateRule{Approvers: []string{alice}}},
	})
	require.NoError(t, err)

	gate := waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return len(st.OpenGates) > 0 })
	require.Equal(t, "staging/remediation/1", gate.OpenGates[0].ID)

	// Block VALIDATE of the first constraint: SHARE UPDATE EXCLUSIVE
	// conflicts with VALIDATE's own lock, not with the remediation's deletes.
	conn, err := pgx.Connect(ctx, db.DSN)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "LOCK TABLE "+first.Table.Sanitize()+" IN SHARE UPDATE EXCLUSIVE MODE")
	require.NoError(t, err)

	var view approval.GateView
	require.NoError(t, update(ctx, c, id, approval.UpdateDecide, approval.DecisionInput{GateID: "staging/remediation/1", Choice: approval.ChoiceDelete, Actor: alice}, &view))

	// VALIDATE of the first constraint is running (and waiting on the lock).
	waitFor(t, ctx, c, id, func(st *rollout.Status) bool { return st.Phase == rollout.PhaseValidate })
	require.Eventually(t, func() bool {
		d, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false
		}
		for _, pa := range d.PendingActivities {
			if pa.ActivityType.GetName() == rollout.ActValidateConstraint && pa.LastStartedTime != nil && pa.LastHeartbeatTime != nil {
				return true
			}
		}
		return false
	}, 30*time.Second, 100*time.Millisecond, "VALIDATE never started")
	w1.kill9(t)

	startWorker(t, bin, env)
	time.Sleep(time.Second)
	require.NoError(t, tx.Commit(ctx))

	var st rollout.Status
	require.NoError(t, run.Get(ctx, &st))
	assert.Equal(t, rollout.StateCompleted, st.State, st.Summary())
	for _, fk := range p.ForeignKeys {
		assert.Equal(t, int64(1), db.Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = $1 AND contype = 'f'", fk.Name), "%s exactly once", fk.Name)
		assert.Equal(t, int64(1), db.Count(t, "SELECT count(*) FROM pg_constraint WHERE conname = $1 AND convalidated", fk.Name), "%s validated", fk.Name)
	}
	assert.Equal(t, int64(len(p.ForeignKeys)), db.Count(t, "SELECT count(*) FROM fkrollout.constraints WHERE rollout_id = $1", id))
	var validateAttempts []string
	for _, r := range st.Environments["staging"].Validated {
		if r.FK == first.Name {
			validateAttempts = append(validateAttempts, r.Action)
		}
	}
	assert.Len(t, validateAttempts, 1)

	// The kill mattered: the validation that was running was retried by
	// the second worker (activity attempt 2), from the same schedule.
	retried := false
	scheduled := map[int64]string{}
	it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() >= 2 && scheduled[a.GetScheduledEventId()] == rollout.ActValidateConstraint {
			retried = true
		}
	}
	assert.True(t, retried, "VALIDATE was retried after the kill")
}

func waitFor(t *testing.T, ctx context.Context, c client.Client, id string, cond func(*rollout.Status) bool) *rollout.Status {
	t.Helper()
	for {
		v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
		if err == nil {
			var st rollout.Status
			if v.Get(&st) == nil {
				if cond(&st) {
					return &st
				}
				if st.State.Terminal() {
					t.Fatalf("rollout ended %s before the condition held: %s", st.State, st.Summary())
				}
			}
		} else if !strings.Contains(err.Error(), "not found") && ctx.Err() != nil {
			t.Fatalf("query: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting on rollout %s", id)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
