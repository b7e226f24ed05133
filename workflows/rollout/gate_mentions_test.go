package rollout

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// Every gate-opened notification names who may decide the gate (the
// notifier mentions them); the gate's own detail is left as it was.
func TestGateOpenedNotificationNamesApprovers(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 2}
	h.fake.orphans["production"] = map[string]int64{}
	h.drive()
	st, err := h.run(testInput())
	require.NoError(t, err)
	want := map[notify.GateKind][]string{
		notify.GateRemediation: {alice, bob, requester},
		notify.GatePromotion:   {alice, bob, requester},
	}
	seen := map[notify.GateKind]bool{}
	for _, ev := range h.fake.notifications {
		if ev.Kind != notify.KindGateOpened {
			continue
		}
		require.NotNil(t, ev.Gate)
		assert.Equal(t, want[ev.Gate.Kind], ev.Gate.Approvers, "gate %s", ev.Gate.ID)
		seen[ev.Gate.Kind] = true
	}
	assert.True(t, seen[notify.GateRemediation] && seen[notify.GatePromotion], "both gates notified: %v", seen)
	for _, g := range st.Gates {
		require.NotNil(t, g.Detail)
		assert.Empty(t, g.Detail.Approvers, "the status keeps the gate's rule, not a copy in its detail")
	}
}
