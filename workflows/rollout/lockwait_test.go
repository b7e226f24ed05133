package rollout

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
)

// What a DDL step waited for (a long transaction it did not queue behind)
// and a dead attempt's backend it ended are on the timeline and in the
// environment's report; a step that waited for nothing adds no line.
func TestTimelineShowsWhatADDLStepWaitedFor(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	const waitedFor = `pid 4242 (application_name "billing-batch", idle in transaction, transaction open 58s) holds RowExclusiveLock on public.workflow_stages`
	h.env.OnActivity(ActApplyConstraint, mock.Anything, mock.Anything).
		Return(func(ctx context.Context, in ConstraintInput) (ConstraintResult, error) {
			// The fake engine's catalog has it, as its own apply would.
			h.fake.mu.Lock()
			h.fake.constraints[in.Environment+"/"+in.FK.Name] = "not_valid"
			h.fake.mu.Unlock()
			r := ConstraintResult{FK: in.FK.Name, Action: "created", Attempts: 1}
			if in.FK.Name == "fk_stages_instance" {
				r.WaitedMS, r.WaitedFor, r.Terminated = 58_000, waitedFor, []int{777}
			}
			return r, nil
		})
	in := testInput()
	in.Environments = in.Environments[:1]
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	var waits, ended []string
	for _, e := range st.Timeline {
		if strings.Contains(e.Message, "without queueing") {
			waits = append(waits, e.Message)
		}
		if strings.Contains(e.Message, "of an earlier attempt") {
			ended = append(ended, e.Message)
		}
	}
	require.Len(t, waits, 1, "one step waited: %v", st.Timeline)
	assert.Contains(t, waits[0], "ADD CONSTRAINT fk_stages_instance NOT VALID waited 58s")
	assert.Contains(t, waits[0], waitedFor)
	require.Len(t, ended, 1)
	assert.Contains(t, ended[0], "[777]")
	var reported []ConstraintResult
	for _, r := range st.Environments["staging"].Applied {
		if r.WaitedMS > 0 {
			reported = append(reported, r)
		}
	}
	require.Len(t, reported, 1)
	assert.Equal(t, waitedFor, reported[0].WaitedFor)
}
