package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestServeMetricsExposesRolloutMetrics: what the workflow emits through the
// SDK's handler reaches a Prometheus scrape under the fkrollout_ prefix,
// with its tags as labels.
func TestServeMetricsExposesRolloutMetrics(t *testing.T) {
	h, srv, err := serveMetrics("127.0.0.1:0", discardLogger())
	require.NoError(t, err)
	defer srv.Shutdown(context.Background())

	h.WithTags(map[string]string{"state": "rolled-back"}).Counter(rollout.MetricRolloutsFinished).Inc(1)
	h.WithTags(map[string]string{"kind": "promotion", "environment": "production"}).Counter(rollout.MetricGatesOpened).Inc(2)

	var body string
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + srv.Addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, `fkrollout_gates_opened{environment="production",kind="promotion"} 2`)
	}, 10*time.Second, 100*time.Millisecond, "the scope reports every second")
	// The SDK's Prometheus sanitizer turns '-' into '_' in label values.
	assert.Contains(t, body, `fkrollout_rollouts_finished{state="rolled_back"} 1`)
	assert.Contains(t, body, `fkrollout_gates_opened{environment="production",kind="promotion"} 2`)
}
