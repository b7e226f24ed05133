package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// An input that asks for what this worker is not configured for is refused
// by the first activity, before anything changes, rather than hours later
// at the step that needs it.
func TestResolvePolicyRefusesWhatTheWorkerCannotDo(t *testing.T) {
	base := func() *config.Config {
		c := cfgWith(map[string]config.Environment{"staging": {DSN: "postgres://x/staging"}, "production": {DSN: "postgres://x/production"}})
		c.Policy = policy.Config{TrustClientIdentity: true}
		return c
	}
	input := func() rollout.Input {
		return rollout.Input{Plan: "foreign_keys: []", Requester: "rita@example.com",
			Environments: []rollout.EnvironmentInput{{Name: "staging"}, {Name: "production"}}}
	}
	cases := []struct {
		name    string
		cfg     func(c *config.Config)
		in      func(in *rollout.Input)
		wantErr []string
	}{
		{name: "fits"},
		{name: "an environment without a database", in: func(in *rollout.Input) {
			in.Environments = append(in.Environments, rollout.EnvironmentInput{Name: "qa"})
		}, wantErr: []string{`environment "qa" is not configured on this worker (configured: production, staging)`}},
		{name: "a watch without sources", in: func(in *rollout.Input) { in.Monitor.Enabled = true },
			wantErr: []string{`monitor.enabled: environment "production" has no monitor sources on this worker`}},
		{name: "a watch with smoke checks has a source", cfg: func(c *config.Config) {
			e := c.Environments["production"]
			e.SmokeChecks = []config.SmokeCheck{{Name: "health", URL: "http://app/health"}}
			c.Environments["production"] = e
		}, in: func(in *rollout.Input) { in.Monitor.Enabled = true }},
		{name: "a watch naming a source the worker lacks", cfg: func(c *config.Config) {
			c.Monitor = monitor.Config{Sources: map[string]monitor.SourceConfig{"pg": {Kind: monitor.KindPostgres, Environment: "production"}}}
		}, in: func(in *rollout.Input) { in.Monitor.Enabled, in.Monitor.Sources = true, []string{"pg", "grafana"} },
			wantErr: []string{`monitor.sources: "grafana" is not a monitor source of this worker (configured: pg)`}},
		{name: "a required rule no chosen source measures refuses the start", cfg: func(c *config.Config) {
			c.Monitor = monitor.Config{RequireRules: []string{"fk_violations"},
				Sources: map[string]monitor.SourceConfig{"pg": {Kind: monitor.KindPostgres, Environment: "production"}}}
		}, in: func(in *rollout.Input) { in.Monitor.Enabled = true },
			wantErr: []string{"monitor.require_rules: rule fk-violations (fk_violations) is required by this worker, but none of the sources watching production (pg) measures fk_violations: give a postgres source log_path"}},
		{name: "a required rule the server log measures", cfg: func(c *config.Config) {
			c.Monitor = monitor.Config{RequireRules: []string{"fk_violations"},
				Sources: map[string]monitor.SourceConfig{"pg": {Kind: monitor.KindPostgres, Environment: "production", LogPath: "/var/log/postgresql/*.json"}}}
		}, in: func(in *rollout.Input) { in.Monitor.Enabled = true }},
		{name: "a required rule an application counter measures", cfg: func(c *config.Config) {
			c.Monitor = monitor.Config{RequireRules: []string{"fk-violations"}, Sources: map[string]monitor.SourceConfig{
				"pg":  {Kind: monitor.KindPostgres, Environment: "production"},
				"app": {Kind: monitor.KindPrometheus, Environment: "production", URL: "http://prom:9090", Queries: map[string]string{"fk_violations": `sum(increase(app_db_errors_total{sqlstate="23503"}[5m]))`}}}}
		}, in: func(in *rollout.Input) { in.Monitor.Enabled = true }},
		{name: "a required rule the chosen sources leave out", cfg: func(c *config.Config) {
			c.Monitor = monitor.Config{RequireRules: []string{"fk_violations"}, Sources: map[string]monitor.SourceConfig{
				"pg":  {Kind: monitor.KindPostgres, Environment: "production"},
				"app": {Kind: monitor.KindPrometheus, Environment: "production", URL: "http://prom:9090", Queries: map[string]string{"fk_violations": "x"}}}}
		}, in: func(in *rollout.Input) { in.Monitor.Enabled, in.Monitor.Sources = true, []string{"pg"} },
			wantErr: []string{"none of the sources watching production (pg) measures fk_violations"}},
		{name: "a required rule missing from the rollout's own matrix", cfg: func(c *config.Config) {
			c.Monitor = monitor.Config{RequireRules: []string{"fk_violations"},
				Sources: map[string]monitor.SourceConfig{"pg": {Kind: monitor.KindPostgres, Environment: "production", LogPath: "/var/log/pg.csv"}}}
		}, in: func(in *rollout.Input) {
			in.Monitor.Enabled = true
			in.Monitor.Rules = []monitor.Rule{{Name: "slow", Metric: monitor.MetricLatencyMS, Op: ">", Threshold: 50, Action: monitor.ActionRollback}}
		}, wantErr: []string{`monitor.require_rules: "fk_violations" is required by this worker but no rule of the rollout's matrix is named so or reads that metric`}},
		{name: "a dry run needs no watch sources", in: func(in *rollout.Input) { in.Monitor.Enabled, in.DryRun = true, true }},
		{name: "an unknown perf workload", in: func(in *rollout.Input) {
			in.Perf = &rollout.PerfInput{Enabled: true, Workload: "checkout"}
		}, wantErr: []string{`perf.workload: "checkout" is not configured on this worker (configured: demo (built in))`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := base()
			if c.cfg != nil {
				c.cfg(cfg)
			}
			in := input()
			if c.in != nil {
				c.in(&in)
			}
			a := mustNew(t, cfg, nil, nil)
			_, err := a.ResolvePolicy(context.Background(), rollout.PolicyRequest{WorkflowID: "r1", Input: in})
			if len(c.wantErr) == 0 {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			typ, nonRetryable := appErrType(t, err)
			assert.Equal(t, rollout.ErrTypePolicy, typ)
			assert.True(t, nonRetryable)
			for _, w := range c.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}
