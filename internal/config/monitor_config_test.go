package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/monitor"
)

func TestMonitorSection(t *testing.T) {
	const envs = `
environments:
  production:
    dsn: postgres://app@prod:5432/apms
`
	cases := []struct {
		name    string
		monitor string
		wantErr string
	}{
		{name: "sources load", monitor: `
monitor:
  sources:
    pg-production:
      kind: postgres
      environment: production
      log_path: /var/log/postgresql/*.json
      log_format: jsonlog
    app:
      kind: prometheus
      environment: production
      url: http://prometheus:9090
      queries:
        error_rate_pct: 100 * sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
`},
		{name: "unknown key is refused", monitor: "monitor:\n  sauces: {}\n", wantErr: "field sauces not found"},
		{name: "bad kind", monitor: "monitor:\n  sources:\n    x: {kind: graphite}\n", wantErr: `monitor source "x": kind "graphite"`},
		{name: "postgres source of an unconfigured environment", monitor: "monitor:\n  sources:\n    pg: {kind: postgres, environment: staging}\n",
			wantErr: `monitor source "pg": environment "staging" is not configured (configured: production)`},
		{name: "prometheus without queries", monitor: "monitor:\n  sources:\n    app: {kind: prometheus, url: http://p:9090}\n",
			wantErr: "prometheus source needs url and queries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "fkrollout.yaml")
			require.NoError(t, os.WriteFile(path, []byte(envs+tc.monitor), 0o600))
			c, err := LoadFrom(path, lookupFrom(nil))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, []string{"app", "pg-production"}, c.Monitor.DefaultSources("production"))
			assert.Equal(t, monitor.KindPostgres, c.Monitor.Sources["pg-production"].Kind)
			assert.Equal(t, "jsonlog", c.Monitor.Sources["pg-production"].LogFormat)
		})
	}
}

// prometheus.url (FKROLLOUT_PROMETHEUS_URL) is the server of every
// prometheus source that names none; a source's own url wins.
func TestPrometheusURLIsTheSourcesDefault(t *testing.T) {
	const file = `
environments:
  production:
    dsn: postgres://app@prod:5432/apms
prometheus:
  url: http://from-file:9090
monitor:
  sources:
    app:
      kind: prometheus
      environment: production
      queries: {error_rate_pct: "sum(rate(errors[5m]))"}
    own:
      kind: prometheus
      environment: production
      url: http://own:9090
      queries: {error_rate_pct: "sum(rate(errors[5m]))"}
`
	path := filepath.Join(t.TempDir(), "fkrollout.yaml")
	require.NoError(t, os.WriteFile(path, []byte(file), 0o600))
	c, err := LoadFrom(path, lookupFrom(nil))
	require.NoError(t, err)
	assert.Equal(t, "http://from-file:9090", c.Monitor.Sources["app"].URL)
	assert.Equal(t, "http://own:9090", c.Monitor.Sources["own"].URL)

	c, err = LoadFrom(path, lookupFrom(map[string]string{"FKROLLOUT_PROMETHEUS_URL": "http://from-env:9090"}))
	require.NoError(t, err)
	assert.Equal(t, "http://from-env:9090", c.Monitor.Sources["app"].URL, "the variable wins over the file")

	noDefault := filepath.Join(t.TempDir(), "fkrollout.yaml")
	require.NoError(t, os.WriteFile(noDefault, []byte(strings.Replace(file, "prometheus:\n  url: http://from-file:9090\n", "", 1)), 0o600))
	_, err = LoadFrom(noDefault, lookupFrom(nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `monitor source "app": prometheus source needs url and queries`)
}
