package slackbot

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The interleaved comparison's rows show the overhead with its interval and
// the row's verdict; the earlier two-run rows keep their plain overhead.
func TestPromotionPerfRowsShowTheInterval(t *testing.T) {
	blocks := promotionBlocks(&PromotionData{From: "staging", To: "production", Perf: []PerfRow{
		{Operation: "create_workflow", BaselineMS: 3.1, WithFKsMS: 4.3, Acceptable: true, Verdict: "acceptable", Overhead: "+1.20ms [-0.31ms, +2.84ms]"},
		{Operation: "query_workflows", BaselineMS: 2, WithFKsMS: 2.5, Acceptable: true},
	}})
	b, err := json.Marshal(blocks)
	require.NoError(t, err)
	text := string(b)
	assert.Contains(t, text, "+1.20ms [-0.31ms, +2.84ms]  acceptable")
	assert.Contains(t, text, "+0.5ms  yes")
}
