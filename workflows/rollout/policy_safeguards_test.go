package rollout

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/workflows/approval"

	"github.com/fkrollout/fkrollout/internal/policy"
)

// minimalInput is what a plain start sends: staging then production with a
// window, nothing about perf, the watch or backups.
func minimalInput() Input {
	in := testInput()
	in.Skip = nil
	return in
}

func TestWithSafeDefaults(t *testing.T) {
	for _, c := range []struct {
		name            string
		mod             func(*Input)
		perf, monitor   bool
		off             []string
		perfWorkersKept bool
	}{
		{name: "absent: both on", perf: true, monitor: true},
		{name: "enabled false no longer turns them off", mod: func(in *Input) {
			in.Perf = &PerfInput{Enabled: false, Workers: 7}
			in.Monitor = MonitorInput{Enabled: false, Duration: "48h"}
		}, perf: true, monitor: true, perfWorkersKept: true},
		{name: "skip turns them off", mod: func(in *Input) {
			in.Perf = &PerfInput{Enabled: true, Workers: 7}
			in.Skip = []string{policy.SafeguardMonitor, policy.SafeguardPerf}
		}, off: []string{policy.SafeguardPerf, policy.SafeguardMonitor}, perfWorkersKept: true},
		{name: "dry run unchanged", mod: func(in *Input) { in.DryRun = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := minimalInput()
			if c.mod != nil {
				c.mod(&in)
			}
			got := WithSafeDefaults(in)
			assert.Equal(t, c.perf, got.Perf != nil && got.Perf.Enabled, "perf")
			assert.Equal(t, c.monitor, got.Monitor.Enabled, "monitor")
			assert.Equal(t, c.off, SafeguardsOff(got))
			if c.perfWorkersKept {
				assert.Equal(t, 7, got.Perf.Workers, "the perf section still configures the phase")
			}
		})
	}
}

func TestSafeguardProblems(t *testing.T) {
	noWindow := func(in *Input) { in.Environments[1].MaintenanceWindow = nil }
	for _, c := range []struct {
		name  string
		cfg   policy.Config
		mod   func(*Input)
		wants []string // substrings, one per problem; none: accepted
	}{
		{name: "every safeguard on", cfg: policy.Config{}},
		{name: "skip not allowed", cfg: policy.Config{AllowSkip: []string{policy.SafeguardWindow}},
			mod:   func(in *Input) { in.Skip = []string{policy.SafeguardPerf, policy.SafeguardFullBackup} },
			wants: []string{`skip: "perf" would turn off the perf phase`, `skip: "full_backup" would turn off the last environment's full backup`}},
		{name: "skip allowed", cfg: policy.Config{AllowSkip: policy.Safeguards},
			mod: func(in *Input) { noWindow(in); in.Skip = slices.Clone(policy.Safeguards) }},
		{name: "last environment without a window", cfg: policy.Config{}, mod: noWindow,
			wants: []string{"environments[1] (production): the last environment needs a maintenance_window"}},
		{name: "window skipped without policy", cfg: policy.Config{},
			mod:   func(in *Input) { noWindow(in); in.Skip = []string{policy.SafeguardWindow} },
			wants: []string{`skip: "window" would turn off the last environment's maintenance window; this worker's policy does not allow that (policy.allow_skip: none)`}},
		{name: "watch shorter than the minimum", cfg: policy.Config{},
			mod:   func(in *Input) { in.Monitor.Duration = "1h" },
			wants: []string{"monitor.duration 1h0m0s is shorter than this worker's minimum watch (policy.min_watch 24h0m0s)"}},
		{name: "policy lowers the minimum watch", cfg: policy.Config{MinWatch: "1m"},
			mod: func(in *Input) { in.Monitor.Duration = "1m" }},
		{name: "dry run needs nothing", cfg: policy.Config{},
			mod: func(in *Input) { noWindow(in); in.DryRun = true; in.Skip = []string{policy.SafeguardPerf} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := minimalInput()
			if c.mod != nil {
				c.mod(&in)
			}
			got := SafeguardProblems(c.cfg, WithSafeDefaults(in))
			require.Len(t, got, len(c.wants), "%q", got)
			for i, w := range c.wants {
				assert.Contains(t, got[i], w)
			}
		})
	}
}

func TestSkipNamesAreChecked(t *testing.T) {
	in := minimalInput()
	in.Skip = []string{"perf", "watch"}
	err := ValidateInput(in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `skip: "watch" is not a safeguard (want some of perf, monitor, window, full_backup)`)
}

// A plain rollout runs the perf phase on staging and backs production up
// whole; what it skips is in the status and at the top of the report.
func TestSafeDefaultsRunTheRunbook(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	perfFake(h, 1)
	in := minimalInput()
	in.Skip = []string{policy.SafeguardMonitor}
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	assert.Equal(t, 1, h.fake.count(ActPerfRun+" baseline staging"), "perf on without a perf section")
	assert.Equal(t, 1, h.fake.count(ActPerfRun+" with-fks staging"))
	require.Len(t, h.fake.backups, 2)
	assert.False(t, h.fake.backups[0].Full, "staging: the environment's own backup setting")
	assert.True(t, h.fake.backups[1].Full, "production: a full backup")
	assert.Equal(t, []string{policy.SafeguardMonitor}, st.SafeguardsOff)
	assert.Contains(t, st.Summary(), "safeguards off: monitor")
	assert.Contains(t, firstLines(st.Report(), 6), "monitor off: the watch after the last environment is skipped")
}

// Without the worker's allow_skip, a skip or a missing window is refused
// by the first activity: nothing else runs.
func TestSafeguardsRefusedBeforeAnythingRuns(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.policy = policy.Config{TrustClientIdentity: true}
	in := minimalInput()
	in.Environments[1].MaintenanceWindow = nil
	in.Skip = []string{policy.SafeguardFullBackup}
	_, err := h.run(in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `skip: "full_backup" would turn off`)
	assert.Contains(t, err.Error(), "the last environment needs a maintenance_window")
	assert.Equal(t, []string{ActResolvePolicy + " "}, h.fake.calls)
}

func firstLines(s string, n int) string {
	return strings.Join(strings.SplitN(s, "\n", n+1)[:n], "\n")
}

// parentWorkflow starts the rollout as a child, as a fleet or any other
// workflow would, and returns the child's result.
func parentWorkflow(ctx workflow.Context, in Input) (*Status, error) {
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{WorkflowID: childRolloutID})
	var st Status
	err := workflow.ExecuteChildWorkflow(cctx, WorkflowName, in).Get(cctx, &st)
	return &st, err
}

const childRolloutID = "parent-1/production"

// driveChild decides the child's gates (the harness's drive decides the
// root workflow's): approveAll, every 10 minutes of workflow time.
func (h *harness) driveChild() {
	var tick func()
	tick = func() {
		if h.env.IsWorkflowCompleted() {
			return
		}
		if v, err := h.env.QueryWorkflowByID(childRolloutID, QueryStatus); err == nil {
			var st Status
			require.NoError(h.t, v.Get(&st))
			for _, g := range st.OpenGates {
				for _, d := range approveAll(h, g) {
					key := g.ID + " " + d.Actor + " " + d.Choice
					if h.sent[key] {
						continue
					}
					h.sent[key] = true
					_ = h.env.UpdateWorkflowByID(childRolloutID, approval.UpdateDecide, key, &testsuite.TestUpdateCallback{
						OnAccept: func() {}, OnReject: func(err error) { h.rejected[key] = err.Error() }, OnComplete: func(any, error) {}}, d)
				}
			}
		}
		h.env.RegisterDelayedCallback(tick, 10*time.Minute)
	}
	h.env.RegisterDelayedCallback(tick, 10*time.Minute)
}

// A rollout started by a parent workflow follows the same rule as one
// started by a person: the safeguards run unless its skip turns them off,
// and a skip its worker's policy does not allow fails it at its own first
// activity.
func TestChildRolloutsRunTheSafeguards(t *testing.T) {
	for _, c := range []struct {
		name   string
		allow  []string
		skip   []string
		refuse string
	}{
		{name: "skips what the policy allows", allow: []string{policy.SafeguardMonitor}, skip: []string{policy.SafeguardMonitor}},
		{name: "skips what the policy forbids", allow: []string{policy.SafeguardMonitor}, skip: []string{policy.SafeguardFullBackup},
			refuse: `skip: "full_backup" would turn off the last environment's full backup (the environment's backup setting applies); this worker's policy does not allow that (policy.allow_skip: monitor)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, approveAll)
			h.env.RegisterWorkflow(parentWorkflow)
			h.fake.policy = policy.Config{TrustClientIdentity: true, AllowSkip: c.allow}
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			perfFake(h, 1)
			in := minimalInput()
			in.Skip = c.skip
			h.driveChild()
			h.env.ExecuteWorkflow(parentWorkflow, in)
			require.True(t, h.env.IsWorkflowCompleted())
			err := h.env.GetWorkflowError()
			if c.refuse != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.refuse)
				assert.Equal(t, []string{ActResolvePolicy + " "}, h.fake.calls, "nothing runs after the policy check")
				return
			}
			require.NoError(t, err)
			var st Status
			require.NoError(t, h.env.GetWorkflowResult(&st))
			assert.Equal(t, StateCompleted, st.State)
			assert.Equal(t, c.skip, st.SafeguardsOff)
			assert.Equal(t, 1, h.fake.count(ActPerfRun+" baseline staging"), "the perf phase runs in a child")
			require.Len(t, h.fake.backups, 2)
			assert.True(t, h.fake.backups[1].Full, "production: a full backup")
		})
	}
}
