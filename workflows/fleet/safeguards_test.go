package fleet

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// TestFleetChildrenRunTheSafeguards: a fleet follows the rollout's rule.
// Its children run the perf phase, the watch, the window and the full
// backup unless the fleet's skip turns one off, and a skip the worker's
// policy does not allow refuses the fleet before any child starts.
func TestFleetChildrenRunTheSafeguards(t *testing.T) {
	window := &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "UTC"}
	for _, c := range []struct {
		name   string
		allow  []string
		mod    func(in *Input)
		off    []string // the safeguards every child runs without
		refuse []string // substrings of the fleet's start error; none: it runs
	}{
		{name: "skips nothing: every child runs every safeguard",
			mod: func(in *Input) { in.MaintenanceWindow = window }},
		{name: "an allowed skip reaches every child", allow: []string{policy.SafeguardPerf, policy.SafeguardWindow},
			mod: func(in *Input) { in.Skip = []string{policy.SafeguardPerf, policy.SafeguardWindow} },
			off: []string{policy.SafeguardPerf, policy.SafeguardWindow}},
		{name: "a skip the policy forbids is refused at start", allow: []string{policy.SafeguardPerf},
			mod: func(in *Input) {
				in.MaintenanceWindow = window
				in.Skip = []string{policy.SafeguardPerf, policy.SafeguardFullBackup}
			},
			refuse: []string{`skip: "full_backup" would turn off the last environment's full backup`, "(policy.allow_skip: perf)"}},
		{name: "no window and none skipped is refused at start",
			refuse: []string{"maintenance_window: each target of a fleet is the last environment of its own rollout and needs one"}},
		{name: "a watch shorter than the policy's minimum is refused at start",
			mod: func(in *Input) {
				in.MaintenanceWindow = window
				in.Monitor = rollout.MonitorInput{Duration: "10m"}
			},
			refuse: []string{"monitor.duration 10m0s is shorter than this worker's minimum watch (policy.min_watch 1h0m0s)"}},
		{name: "perf.environment no longer picks one target",
			mod: func(in *Input) {
				in.MaintenanceWindow = window
				in.Perf = &rollout.PerfInput{Enabled: true, Environment: "t2"}
			},
			refuse: []string{`perf.environment "t2": every target of a fleet runs its own perf phase`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newFleetHarness(t)
			h.policy = policy.Config{TrustClientIdentity: true, AllowSkip: c.allow, MinWatch: "1h"}
			h.approveEvery()
			in := fleetInput("t1", "t2", "t3")
			in.Skip = nil
			in.BatchSize = 2
			if c.mod != nil {
				c.mod(&in)
			}
			st, err := h.run(in)
			if len(c.refuse) > 0 {
				require.Error(t, err)
				var ae *temporal.ApplicationError
				require.True(t, errors.As(err, &ae))
				assert.Equal(t, rollout.ErrTypePolicy, ae.Type())
				for _, w := range c.refuse {
					assert.Contains(t, err.Error(), w)
				}
				assert.Equal(t, rollout.StateFailed, st.State)
				assert.Empty(t, h.kids.list(), "no child started")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, rollout.StateCompleted, st.State)
			assert.Equal(t, c.off, st.SafeguardsOff)
			kids := h.kids.list()
			require.Len(t, kids, 3)
			for _, k := range kids {
				target := k.In.Environments[0].Name
				assert.Equal(t, in.Skip, k.In.Skip, "%s: the fleet's skip", target)
				// What the child's own first steps make of its input.
				safe := rollout.WithSafeDefaults(k.In)
				assert.Equal(t, c.off, rollout.SafeguardsOff(safe), target)
				assert.Empty(t, rollout.SafeguardProblems(h.policy, safe), "%s: its own policy check passes", target)
				assert.Equal(t, !slices.Contains(in.Skip, policy.SafeguardPerf), safe.Perf.Enabled, "%s: perf", target)
				assert.Equal(t, target, safe.Perf.Environment, "%s: perf in its own target", target)
				assert.True(t, safe.Monitor.Enabled, "%s: the watch", target)
				if in.MaintenanceWindow != nil {
					assert.Equal(t, "02:00", k.In.Environments[0].MaintenanceWindow.Start, target)
				}
			}
		})
	}
}

// TestFleetSafeguardPolicy: checked at the fleet's start, every target
// must allow the perf phase its child will run; a dry run needs nothing.
func TestFleetSafeguardPolicy(t *testing.T) {
	cfg := policy.Config{TrustClientIdentity: false, Environments: map[string]policy.Environment{
		"t1": {Approvers: []string{alice, bob}, Perf: true}, "t2": {Approvers: []string{alice, bob}},
		GateEnvironment: {Approvers: []string{alice, bob}},
	}}
	in := Input{Plan: "foreign_keys: [...]", Requester: requester, Targets: []string{"t1", "t2"},
		MaintenanceWindow: &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "UTC"}}
	_, err := rollout.ResolvePolicy(cfg, in.PolicyRequest("fleet-1", true), "", start)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `perf: environment "t2" may not run the perf phase`)
	assert.NotContains(t, err.Error(), `environment "t1" may not`)

	// The same fleet as histories before the safeguards checked it.
	_, err = rollout.ResolvePolicy(cfg, in.PolicyRequest("fleet-1", false), "", start)
	require.NoError(t, err)

	dry := in
	dry.DryRun, dry.MaintenanceWindow = true, nil
	_, err = rollout.ResolvePolicy(cfg, dry.PolicyRequest("fleet-1", true), "", start)
	require.NoError(t, err)
}
