package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/workflows/approval"
)

// rollbackCalls are the calls of the rollback: its hooks and the drops.
func rollbackCalls(f *fakeEngine) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, "Hook ") || strings.HasPrefix(c, ActRollback+" ") {
			out = append(out, c)
		}
	}
	return out
}

// Every rollback, whatever triggered it, runs each environment's rollback
// hooks around its drop: before (stop the application), drop, after
// (start it), newest environment first.
func TestRollbackHooksRunOnEveryRollbackPath(t *testing.T) {
	both := []string{
		"Hook rollback_before/stop-api production", "Hook rollback_before/drain production", ActRollback + " production", "Hook rollback_after/start-api production",
		"Hook rollback_before/stop-api staging", "Hook rollback_before/drain staging", ActRollback + " staging", "Hook rollback_after/start-api staging",
	}
	for _, c := range []struct {
		name  string
		setup func(h *harness) Input
		want  []string
	}{
		{name: "manual", want: both[4:], setup: func(h *harness) Input {
			h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
			h.env.RegisterDelayedCallback(func() {
				h.control(approval.UpdateRollback, approval.ControlInput{Actor: alice, Reason: "wrong plan"})
			}, time.Hour)
			return testInput()
		}},
		{name: "perf verdict", want: both[4:], setup: func(h *harness) Input {
			perfFake(h, 30)
			return perfInput()
		}},
		{name: "monitor verdict", want: both, setup: func(h *harness) Input {
			withMonitor(t, h, slowFrom(10), false)
			return monitorInput()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, approveAll)
			if h.fake.orphans["staging"] == nil {
				h.fake.orphans["staging"] = map[string]int64{}
			}
			h.fake.orphans["production"] = map[string]int64{}
			h.fake.rollbackHooks = map[string][]string{HookSetRollbackBefore: {"stop-api", "drain"}, HookSetRollbackAfter: {"start-api"}}
			in := c.setup(h)
			h.drive()
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Equal(t, StateRolledBack, st.State)
			assert.Equal(t, c.want, rollbackCalls(h.fake))
			require.Len(t, st.Environments["staging"].RollbackHooks, 3, "reported with the environment")
		})
	}
}

// A failing before hook does not stop the rollback: the drop happens and
// the after hooks run; the failure is in the timeline.
func TestRollbackHookFailureDoesNotStopTheDrop(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.rollbackHooks = map[string][]string{HookSetRollbackBefore: {"stop-api", "drain"}, HookSetRollbackAfter: {"start-api"}}
	h.fake.failingHook = "stop-api"
	h.env.RegisterDelayedCallback(func() {
		h.control(approval.UpdateRollback, approval.ControlInput{Actor: alice, Reason: "wrong plan"})
	}, time.Hour)
	st, err := h.run(testInput())
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)
	assert.Equal(t, []string{"Hook rollback_before/stop-api staging", ActRollback + " staging", "Hook rollback_after/start-api staging"}, rollbackCalls(h.fake))
	assert.Empty(t, h.fake.constraints)
	var failed bool
	for _, e := range st.Timeline {
		failed = failed || strings.Contains(e.Message, "rollback_before hook stop-api failed (exit 3); the rollback goes on")
	}
	assert.True(t, failed, "the failure is in the timeline")
}
