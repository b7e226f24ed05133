package rollout

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README's example input must decode strictly and pass validation, so
// pasting it into the Temporal UI starts a rollout.
func TestExampleInputIsValid(t *testing.T) {
	b, err := os.ReadFile("../testdata/example-input.json")
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var in Input
	require.NoError(t, dec.Decode(&in))
	w := &rollout{in: in, windows: map[string]window{}}
	require.NoError(t, w.validateInput())
	assert.Contains(t, w.windows, "production")
	assert.Equal(t, 2, in.Approval.Rule("promotion", "production").MinApprovals)
	assert.Equal(t, "abort", in.Approval.Rule("remediation", "staging").OnTimeout)
	assert.True(t, in.Approval.Rule("remediation", "staging").Admits("someone", []string{"DBA"}, true), "roles match case-insensitively")
	assert.False(t, in.Approval.Rule("remediation", "staging").Admits("mallory@example.com", nil, true))
	require.NotNil(t, in.Perf)
	assert.True(t, in.Perf.Enabled)

	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	assert.Contains(t, string(readme), string(bytes.TrimSpace(b)), "README shows this file verbatim")
}
