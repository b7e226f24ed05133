package rollout

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A worker lost while a deploy hook runs: Temporal retries that hook's
// activity, and only that hook runs again; the one that succeeded before
// does not.
func TestDeployHookRetryAfterCrashResumesAtTheFailedHook(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	h.fake.failures[ActRunDeployHooks+" production/restart-api"] = []error{errors.New("worker lost")}
	h.drive()
	st, err := h.run(testInput())
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	prod := slices.DeleteFunc(slices.Clone(h.fake.hookRuns), func(r string) bool { return !strings.HasPrefix(r, "production/") })
	assert.Equal(t, []string{"production/prisma-generate", "production/restart-api", "production/restart-api"}, prod)
	for _, g := range st.Gates {
		assert.NotContains(t, g.Title, "deploy hook failed", "a retried activity is not a failed hook")
	}
}
