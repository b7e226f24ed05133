package monitor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCoverageAndRequiredRules(t *testing.T) {
	cfg := Config{RequireRules: []string{"fk_violations", "smoke-tests-failing"}, Sources: map[string]SourceConfig{
		"pg":    {Kind: KindPostgres, Environment: "production"},
		"pglog": {Kind: KindPostgres, Environment: "staging", LogPath: "/var/log/pg.csv"},
		"app":   {Kind: KindPrometheus, Environment: "production", URL: "http://p", Queries: map[string]string{"fk_violations": "x"}},
	}}
	rules := DefaultMatrix(Thresholds{})
	cov := cfg.Coverage("production", nil, rules)
	assert.Equal(t, []string{"app"}, cov[RuleFKViolations], "the application's counter")
	assert.Equal(t, []string{"pg"}, cov[RuleLatency])
	assert.Empty(t, cov[RuleSmokeFailing])
	assert.Equal(t, []string{"pglog"}, cfg.Coverage("staging", nil, rules)[RuleFKViolations], "the server log")

	probs := cfg.RequiredUncovered("production", nil, rules)
	require.Len(t, probs, 1, "fk_violations is measured by app; smoke tests by nothing")
	assert.Contains(t, probs[0], "rule smoke-tests-failing (smoke_failures) is required by this worker, but none of the sources watching production (app, pg) measures smoke_failures: configure smoke_checks")
	probs = cfg.RequiredUncovered("production", []string{"pg"}, rules)
	assert.Len(t, probs, 2)
	assert.Contains(t, probs[0], "give a postgres source log_path")
}

func TestConfigValidateMonitorAdditions(t *testing.T) {
	cfg := Config{RequireRules: []string{" "}, Sources: map[string]SourceConfig{
		"app": {Kind: KindPrometheus, URL: "http://p", Queries: map[string]string{"latency_ms": "x"}, BaselineDays: 40},
	}}
	err := cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `monitor source "app": baseline_days 40 (want 0 to 28)`)
	assert.Contains(t, err.Error(), "monitor.require_rules[0] is empty")
}
