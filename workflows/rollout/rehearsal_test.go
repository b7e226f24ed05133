package rollout

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callsFromRollback are the calls in env from its first rollback hook on.
func callsFromRollback(f *fakeEngine, env string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	started := false
	for _, c := range f.calls {
		if !strings.HasSuffix(c, " "+env) {
			continue
		}
		started = started || strings.HasPrefix(c, "Hook rollback_before/")
		if started {
			out = append(out, c)
		}
	}
	return out
}

// Asked by the input or by the worker's policy, the rollback is rehearsed
// in staging after it is done and before the promotion: hooks, drop,
// hooks, the constraints added again and validated again; production
// follows as usual.
func TestRollbackRehearsalInStaging(t *testing.T) {
	for _, c := range []struct {
		name     string
		input    bool
		policy   bool
		envs     int
		rehearse bool
	}{
		{name: "input asks", input: true, envs: 2, rehearse: true},
		{name: "policy asks", policy: true, envs: 2, rehearse: true},
		{name: "nobody asks", envs: 2},
		{name: "one environment: nothing to rehearse before", input: true, envs: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, approveAll)
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			h.fake.policy.RehearseRollback = c.policy
			h.fake.rollbackHooks = map[string][]string{HookSetRollbackBefore: {"stop-api"}, HookSetRollbackAfter: {"start-api"}}
			in := testInput()
			in.RehearseRollback = c.input
			in.Environments = in.Environments[:c.envs]
			h.drive()
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Equal(t, StateCompleted, st.State)
			rh := st.Environments["staging"].Rehearsal
			if !c.rehearse {
				assert.Nil(t, rh)
				assert.Empty(t, callsFromRollback(h.fake, "staging"))
				return
			}
			require.NotNil(t, rh)
			all := []string{"fk_instances_workspace", "fk_stages_instance", "fk_vendor_workspace"}
			assert.ElementsMatch(t, all, rh.Dropped)
			assert.ElementsMatch(t, all, rh.Reapplied)
			assert.ElementsMatch(t, all, rh.Revalidated)
			calls := callsFromRollback(h.fake, "staging")
			require.GreaterOrEqual(t, len(calls), 3+3+1+3)
			assert.Equal(t, []string{"Hook rollback_before/stop-api staging", ActRollback + " staging", "Hook rollback_after/start-api staging"}, calls[:3])
			assert.Equal(t, []string{ActApplyConstraint + " staging", ActApplyConstraint + " staging", ActApplyConstraint + " staging"}, calls[3:6])
			assert.Contains(t, calls[6:], ActValidateConstraint+" staging")
			for fk, s := range stateIn(st, "staging") {
				assert.Equal(t, CTested, s, "%s: behaviour tests passed before the rehearsal", fk)
			}
			for fk, s := range stateIn(st, "production") {
				assert.Equal(t, CTested, s, fk)
			}
			assert.Equal(t, "valid", h.fake.constraints["staging/fk_stages_instance"], "staging ends with the constraints validated")
			assert.Zero(t, h.fake.count(ActRollback+" production"))
			assert.Contains(t, firstLines(st.Report(), 10), "**Rollback rehearsed** in staging before the next environment")
		})
	}
}
