package dbx

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// Which conflicting transactions are waited out: old ones, idle ones,
// prepared ones, and ones of unknown age until they have been seen for
// blocker_age; a young running one is not.
func TestClearanceCountsBlockers(t *testing.T) {
	p := LockPolicy{}.normalised()
	now := time.Now()
	tests := []struct {
		name string
		b    Blocker
		want bool
	}{
		{"old write", Blocker{PID: 1, State: "active", XactAge: time.Second}, true},
		{"young write", Blocker{PID: 2, State: "active", XactAge: 5 * time.Millisecond}, false},
		{"young, idle in transaction", Blocker{PID: 3, State: "idle in transaction", XactAge: time.Millisecond}, true},
		{"young, idle in aborted transaction", Blocker{PID: 4, State: "idle in transaction (aborted)", XactAge: time.Millisecond}, true},
		{"prepared", Blocker{Prepared: true, XactAge: -1}, true},
		{"unknown age, first seen", Blocker{PID: 5, XactAge: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clearance{p: p}
			got := c.blocking([]Blocker{tt.b}, now)
			assert.Equal(t, tt.want, len(got) == 1)
		})
	}
	// Unknown age: aged by fkrollout's own observation across looks.
	c := &clearance{p: p}
	unknown := Blocker{PID: 6, XactAge: -1, vxid: "3/7"}
	assert.Len(t, c.blocking([]Blocker{unknown}, now), 1, "first look")
	assert.Empty(t, c.blocking([]Blocker{unknown}, now.Add(5*time.Millisecond)), "seen for 5 ms: young")
	got := c.blocking([]Blocker{unknown}, now.Add(time.Second))
	if assert.Len(t, got, 1, "seen for 1 s") {
		assert.True(t, got[0].AgeObserved)
		assert.Equal(t, time.Second, got[0].XactAge)
		assert.Contains(t, got[0].String(), "seen for 1s")
	}
}

// A heartbeat names at most ten blockers and counts the rest.
func TestWaitNamesAtMostTenBlockers(t *testing.T) {
	var bs []Blocker
	for i := range 25 {
		bs = append(bs, Blocker{PID: 100 + i, State: "active", XactAge: time.Minute, Mode: "RowExclusiveLock", Table: "t", Granted: true})
	}
	w := newWait(bs, 12*time.Second, 2*time.Minute)
	assert.Len(t, w.Blockers, 10)
	assert.Equal(t, 15, w.More)
	assert.Equal(t, `waiting (12s of 2m0s) without queueing for pid 100 (active, transaction open 1m0s) holds RowExclusiveLock on t and 24 more`, w.String())
	few := newWait(bs[:2], 0, time.Minute)
	assert.Len(t, few.Blockers, 2)
	assert.Zero(t, few.More)
	assert.Contains(t, few.String(), fmt.Sprintf("pid %d", 100))
	assert.Contains(t, few.String(), "and 1 more")
}
