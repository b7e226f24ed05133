package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

func fleetPlanFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "migration.sql")
	require.NoError(t, os.WriteFile(f, []byte("ALTER TABLE a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES b(id) NOT VALID;"), 0o600))
	return f
}

// parseFleetArgs parses a fleet-start command line as the command does,
// without running it.
func parseFleetArgs(t *testing.T, args ...string) (fleetOptions, error) {
	t.Helper()
	cmd, o, _ := newFleetStartCmd()
	if err := cmd.ParseFlags(args); err != nil {
		return *o, err
	}
	return *o, o.checkFlags(cmd.Flags())
}

func TestFleetStartFlags(t *testing.T) {
	planFile := fleetPlanFile(t)
	now := time.Date(2026, 5, 1, 13, 37, 0, 0, time.UTC)

	t.Run("flags", func(t *testing.T) {
		o, err := parseFleetArgs(t, "--plan", planFile, "--targets", "tenant_a, tenant_b,tenant_c,tenant_d", "--canary", "2", "--batch", "3",
			"--failure-budget", "2", "--requester", "rita", "--approvers", "alice,role:dba", "--min-approvals", "2", "--gate-timeout", "24h",
			"--window", "02:00/2h/Asia/Jakarta", "--monitor", "1h", "--perf", "30s", "--dry-run", "--skip", "perf,full_backup")
		require.NoError(t, err)
		in, err := buildFleetInput(o, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"tenant_a", "tenant_b", "tenant_c", "tenant_d"}, in.Targets)
		assert.Equal(t, 2, in.Canary)
		assert.Equal(t, 3, in.BatchSize)
		assert.Equal(t, 2, in.FailureBudget)
		assert.Equal(t, "rita", in.Requester)
		assert.Contains(t, in.Plan, "fk_a_b")
		assert.True(t, in.DryRun)
		assert.Equal(t, []string{"alice", "role:dba"}, in.Approval.Default.Approvers)
		assert.Equal(t, "24h", in.Approval.Default.Timeout)
		assert.Equal(t, approval.GateRule{Approvers: []string{"alice", "role:dba"}, MinApprovals: 2, Timeout: "24h"}, in.Approval.Gates["promotion/fleet"])
		assert.Equal(t, &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "Asia/Jakarta"}, in.MaintenanceWindow)
		assert.True(t, in.Monitor.Enabled)
		require.NotNil(t, in.Perf)
		assert.Empty(t, in.Perf.Environment, "each child runs perf in its own target")
		assert.Equal(t, []string{"perf", "full_backup"}, in.Skip)
	})
	t.Run("defaults", func(t *testing.T) {
		o, err := parseFleetArgs(t, "--plan", planFile, "--targets", "a,b", "--requester", "rita")
		require.NoError(t, err)
		in, err := buildFleetInput(o, now)
		require.NoError(t, err)
		assert.Zero(t, in.Canary, "0: the workflow's default")
		assert.Zero(t, in.BatchSize)
		assert.Zero(t, in.FailureBudget)
		assert.Nil(t, in.MaintenanceWindow)
		assert.Empty(t, in.Approval.Gates)
	})
	t.Run("input file with overrides", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "fleet.json")
		require.NoError(t, os.WriteFile(f, []byte(`{"plan":"foreign_keys: []","requester":"rita","targets":["a","b","c"],"canary":1,"batch_size":2,
			"approval":{"default":{"approvers":["alice"]}}}`), 0o600))
		o, err := parseFleetArgs(t, "--input", f, "--batch", "1", "--requester", "rex", "--skip", "monitor")
		require.NoError(t, err)
		in, err := buildFleetInput(o, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"a", "b", "c"}, in.Targets)
		assert.Equal(t, 1, in.Canary)
		assert.Equal(t, 1, in.BatchSize, "flag overrides the file")
		assert.Equal(t, "rex", in.Requester)
		assert.Equal(t, []string{"alice"}, in.Approval.Default.Approvers)
		assert.Equal(t, []string{"monitor"}, in.Skip, "--skip adds to the file's skip")
	})
	t.Run("documented input", func(t *testing.T) {
		// docs/FLEET.md's Temporal UI example stays valid input.
		b, err := os.ReadFile("../docs/FLEET.md")
		require.NoError(t, err)
		m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(b)
		require.NotNil(t, m, "a json block in docs/FLEET.md")
		var in fleet.Input
		dec := json.NewDecoder(bytes.NewReader(m[1]))
		dec.DisallowUnknownFields()
		require.NoError(t, dec.Decode(&in))
		require.NoError(t, in.Validate())
		assert.Len(t, in.Targets, 7)
	})

	errCases := []struct {
		name string
		args []string
		want string
	}{
		{"no targets", []string{"--plan", planFile, "--requester", "rita"}, "--targets is required"},
		{"blank targets", []string{"--plan", planFile, "--requester", "rita", "--targets", " , "}, "--targets is required"},
		{"duplicate", []string{"--plan", planFile, "--requester", "rita", "--targets", "a,b,a"}, `target "a" is listed twice`},
		{"canary above targets", []string{"--plan", planFile, "--requester", "rita", "--targets", "a,b", "--canary", "3"}, "canary 3 is more than the 2 targets"},
		{"negative batch and budget", []string{"--plan", planFile, "--requester", "rita", "--targets", "a,b", "--batch", "-1", "--failure-budget", "-1"}, "batch_size -1"},
		{"no plan", []string{"--requester", "rita", "--targets", "a"}, "--plan is required"},
		{"no requester", []string{"--plan", planFile, "--requester", "", "--targets", "a"}, "--requester is required"},
		{"bad window", []string{"--plan", planFile, "--requester", "rita", "--targets", "a", "--window", "0200"}, "--window"},
		{"policy flag with input", []string{"--input", planFile, "--approvers", "alice"}, "--approvers cannot be combined with --input"},
		{"unknown skip", []string{"--plan", planFile, "--requester", "rita", "--targets", "a", "--skip", "watch"}, `skip: "watch" is not a safeguard`},
		{"unreadable input", []string{"--input", filepath.Join(t.TempDir(), "missing.json")}, "--input"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFleetArgs(t, tc.args...)
			require.NoError(t, err)
			_, err = buildFleetInput(o, now)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("bad flag", func(t *testing.T) {
		_, err := parseFleetArgs(t, "--canary", "one")
		require.Error(t, err)
		_, err = parseFleetArgs(t, "--gate-timeout", "soon")
		require.Error(t, err)
		_, err = parseFleetArgs(t, "--gate-timeout", "0s")
		assert.IsType(t, usageError{}, err)
	})
}

// TestFleetCommandsUsage: bad usage exits 2 before any connection.
func TestFleetCommandsUsage(t *testing.T) {
	planFile := fleetPlanFile(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"fleet-start", "--plan", planFile, "--requester", "rita"}, "--targets is required"},
		{[]string{"fleet-start", "--plan", planFile, "--requester", "rita", "--targets", "a,a"}, "listed twice"},
		{[]string{"fleet-start", "--targets", "a", "stray"}, "fleet-start takes no arguments"},
		{[]string{"fleet-start", "--plan", planFile, "--targets", "a", "--gate-timeout", "soon"}, `invalid argument "soon"`},
		{[]string{"fleet-status"}, "usage: fkrollout fleet-status FLEET_ID"},
		{[]string{"fleet-status", "a", "b"}, "usage: fkrollout fleet-status FLEET_ID"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		assert.Equal(t, 2, run(context.Background(), tc.args, &out, &errb), tc.args)
		assert.Contains(t, errb.String(), tc.want, tc.args)
	}
	var out bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"help"}, &out, &out))
	assert.Contains(t, out.String(), "fleet-start")
	assert.Contains(t, out.String(), "fleet-status")
}

func TestFleetStatusTable(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	dl := at.Add(24 * time.Hour)
	st := &fleet.Status{FleetID: "fl", Requester: "rita", State: rollout.StateWaitingForGate, Phase: "wave-1/2", FailureBudget: 2, Failed: 1,
		PlanName: "demo", ConstraintCount: 3,
		Waves: []fleet.Wave{{Number: 1, Canary: true, Targets: []string{"a"}}, {Number: 2, Targets: []string{"b", "c"}}},
		Targets: []fleet.Target{
			{Name: "a", Wave: 1, ChildID: "fl/a", State: rollout.StateFailed, Error: "plan does not fit a:\n table missing", Failed: true},
			{Name: "b", Wave: 2, ChildID: "fl/b", State: rollout.StateRunning},
			{Name: "c", Wave: 2, ChildID: "fl/c", State: rollout.StatePending},
		},
		OpenGate: &approval.Gate{ID: "fleet/wave/1", Title: "wave 1/2 done", Choices: []string{"approve", "reject", "abort"},
			Rule: approval.GateRule{MinApprovals: 2, OnTimeout: "reject"}, Deadline: &dl},
		Decisions: []approval.Decision{{GateID: "fleet/wave/1", Action: "approve", Actor: "alice", Reason: "ok", Time: at}},
	}
	live := map[string]*rollout.Status{"b": {Phase: rollout.PhaseRemediation,
		OpenGates: []approval.Gate{{ID: "b/remediation/1", Title: "orphans", Choices: []string{"delete", "abort"}}}}}
	var out bytes.Buffer
	printFleet(&out, st, live)
	s := out.String()
	for _, want := range []string{
		"fleet fl: waiting-for-approval (wave-1/2) requested by rita",
		"1 failed of budget 2",
		"plan demo (3 constraints)",
		"plan does not fit a: table missing",
		"open gate fleet/wave/1: wave 1/2 done",
		"2 approvals needed, 0 vote(s) so far",
		"→ reject",
		"fkrollout approve fl fleet/wave/1 --reason",
		"fkrollout decide fl/b b/remediation/1 <delete|abort>",
		"approve by alice (ok)",
	} {
		assert.Contains(t, s, want)
	}
	assert.Regexp(t, `1 \(canary\)\s+a\s+failed`, s)
	assert.Regexp(t, `2\s+b\s+running\s+remediation\s+0\s+0\s+fl/b\s+open gate b/remediation/1`, s)
	assert.Regexp(t, `2\s+c\s+pending\s+-`, s)
	assert.Equal(t, "http://ui/namespaces/default/workflows/fl%2Fb", fleetUILink("http://ui/", "default", "fl/b"))
}

// TestFleetCLIAgainstDevServer drives a fleet with the CLI only, on a real
// dev server: fleet-start, fleet-status, the unchanged approve command on
// the wave gate (four-eyes refusal, then an approver), the children's ids
// with the ordinary status command, and the search attributes.
func TestFleetCLIAgainstDevServer(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	tq := "fleet-cli-test"
	w := worker.New(srv.Client(), tq, worker.Options{})
	workflows.Register(w)
	registerStubs(w, 0, devPolicy) // clean databases: the children run through without gates of their own
	require.NoError(t, w.Start())
	defer w.Stop()

	planFile := fleetPlanFile(t)
	code, out, errOut := starterRun(t, "fleet-start", "--plan", planFile, "--id", "cli-fleet", "--requester", "rita", "--approvers", "alice,bob",
		"--targets", "t1,t2,t3", "--canary", "1", "--batch", "2", "--task-queue", tq, "--ui", "http://ui.test", "--skip", "perf,monitor,window,full_backup")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "fleet started:  cli-fleet")
	assert.Contains(t, out, "http://ui.test/namespaces/default/workflows/cli-fleet")
	assert.Contains(t, out, "wave 2/2:       t2, t3")

	code, _, errOut = starterRun(t, "fleet-start", "--plan", planFile, "--id", "cli-fleet", "--requester", "rita", "--targets", "t1", "--task-queue", tq, "--skip", "window")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "already exists")

	require.Eventually(t, func() bool {
		_, out, _ := starterRun(t, "fleet-status", "cli-fleet")
		return strings.Contains(out, "open gate fleet/wave/1")
	}, 30*time.Second, 200*time.Millisecond, "wave gate never opened")
	_, out, _ = starterRun(t, "fleet-status", "cli-fleet")
	assert.Regexp(t, `1 \(canary\)\s+t1\s+completed\s+done\s+1\s+0\s+cli-fleet/t1`, out)
	assert.Regexp(t, `2\s+t2\s+pending`, out)

	// The canary child is an ordinary rollout under its own id.
	code, out, errOut = starterRun(t, "status", "cli-fleet/t1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "rollout cli-fleet/t1: completed")

	// Search attributes while the gate is open.
	c := srv.Client()
	require.Eventually(t, func() bool {
		n, err := c.CountWorkflow(context.Background(), &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default",
			Query: "RolloutStatus = 'waiting-for-approval' AND Requester = 'rita' AND RolloutPhase = 'wave-1/2'"})
		return err == nil && n.Count == 1
	}, 15*time.Second, 200*time.Millisecond, "fleet search attributes not upserted")

	code, _, errOut = starterRun(t, "approve", "cli-fleet", "fleet/wave/1", "--actor", "rita")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "four-eyes")
	code, _, errOut = starterRun(t, "approve", "cli-fleet", "fleet/wave/1", "--actor", "mallory")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "not an allowed approver")
	code, out, errOut = starterRun(t, "approve", "cli-fleet", "fleet/wave/1", "--actor", "alice", "--reason", "canary clean")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "gate fleet/wave/1 decided: approve")

	require.Eventually(t, func() bool {
		_, out, _ := starterRun(t, "fleet-status", "cli-fleet")
		return strings.Contains(out, "fleet cli-fleet: completed")
	}, 30*time.Second, 200*time.Millisecond, "fleet never completed")
	code, out, errOut = starterRun(t, "fleet-status", "cli-fleet", "--json")
	require.Equal(t, 0, code, errOut)
	var st fleet.Status
	require.NoError(t, json.Unmarshal([]byte(out), &st))
	assert.Equal(t, 3, st.Succeeded)
	require.Len(t, st.Decisions, 1)
	assert.Equal(t, "alice", st.Decisions[0].Actor)
	assert.Equal(t, "canary clean", st.Decisions[0].Reason)
	assert.Equal(t, "cli", st.Decisions[0].Via)
	// The two refused approvals are on record, with who and why.
	require.Len(t, st.Refusals, 2, "refused CLI decisions are recorded")
	assert.Equal(t, approval.Refusal{Signal: "cli:approve", Actor: "rita", GateID: "fleet/wave/1", Reason: st.Refusals[0].Reason, Time: st.Refusals[0].Time}, st.Refusals[0])
	assert.Contains(t, st.Refusals[0].Reason, "four-eyes")
	assert.Equal(t, "mallory", st.Refusals[1].Actor)
	assert.Contains(t, st.Refusals[1].Reason, "not an allowed approver")
	for _, tg := range st.Targets {
		assert.Equal(t, rollout.StateCompleted, tg.State, tg.Name)
		assert.Equal(t, "/reports/cli-fleet/"+tg.Name+".md", tg.ReportPath)
	}

	var result fleet.Status
	require.NoError(t, c.GetWorkflow(context.Background(), "cli-fleet", "").Get(context.Background(), &result))
	assert.Equal(t, "/reports/cli-fleet.md", result.ReportPath, "the fleet's own report was handed to the worker")

	// fkrollout report works on a fleet id: the fleet's completion report.
	code, out, errOut = starterRun(t, "report", "cli-fleet")
	require.Equal(t, 0, code, errOut)
	for _, want := range []string{"FK Fleet Rollout", "— COMPLETED", "| 1 (canary) | t1 | completed |", "`fleet/wave/1`: approve by alice",
		"| fleet/wave/1 | approve | alice | cli | canary clean |", "2 refused attempt(s)", "| Databases Succeeded | 3 | 3 | ✅ PASS (100%) |"} {
		assert.Contains(t, out, want)
	}

	code, _, errOut = starterRun(t, "fleet-status", "cli-fleet/t2")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "is not a fleet rollout")
	code, _, errOut = starterRun(t, "fleet-status", "no-such-fleet")
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, `no fleet with id "no-such-fleet"`)
}

// TestFleetStartSafeguards: fleet-start refuses what the fleet's first
// activity would (no window unless skipped; with --config, a skip the
// worker's policy does not allow) and names what every database runs
// without.
func TestFleetStartSafeguards(t *testing.T) {
	dir := t.TempDir()
	strict := writeInputFile(t, dir, "strict.yaml", "policy:\n  trust_client_identity: true\n")
	lenient := writeInputFile(t, dir, "lenient.yaml", "policy:\n  trust_client_identity: true\n  allow_skip: [window, perf]\n")
	window := &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "UTC"}
	input := func(skip []string, w *rollout.MaintenanceWindow) fleet.Input {
		return fleet.Input{Plan: "x", Requester: "rita", Targets: []string{"a", "b"}, Skip: skip, MaintenanceWindow: w}
	}
	for _, c := range []struct {
		name, config, err, warning string
		in                         fleet.Input
	}{
		{name: "every safeguard on", in: input(nil, window), config: strict},
		{name: "no window", in: input(nil, nil), err: "every target needs a maintenance window: --window HH:MM/DURATION[/TZ] (or --skip window"},
		{name: "window skipped, no config: the worker decides", in: input([]string{"window"}, nil),
			warning: "window off: the last environment's maintenance window is skipped"},
		{name: "skip refused by the config", in: input([]string{"window"}, nil), config: strict,
			err: `skip: "window" would turn off the last environment's maintenance window; this worker's policy does not allow that (policy.allow_skip: none)`},
		{name: "skip allowed by the config", in: input([]string{"perf", "window"}, nil), config: lenient,
			warning: "perf off: the perf phase"},
		{name: "dry run needs nothing", in: fleet.Input{Plan: "x", Requester: "rita", Targets: []string{"a"}, DryRun: true, Skip: []string{"full_backup"}}, config: strict},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := checkFleetSafeguards(c.in, c.config, &stderr, time.Now())
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			if c.warning == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), "safeguards off in every database")
				assert.Contains(t, stderr.String(), c.warning)
			}
		})
	}
}
