package activities

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// perfCfg is cfgWith plus a worker policy that allows the perf phase in
// perfEnvs.
func perfCfg(envs map[string]config.Environment, perfEnvs ...string) *config.Config {
	cfg := cfgWith(envs)
	cfg.Policy.Environments = map[string]policy.Environment{}
	for _, e := range perfEnvs {
		cfg.Policy.Environments[e] = policy.Environment{Approvers: []string{"role:dba"}, Perf: true}
	}
	return cfg
}

// TestPerfActivitiesEnforceThePolicy: PerfRun and PerfExplain refuse inline
// SQL and environments where the policy does not allow the perf phase, on
// their own, whatever scheduled them. No database is needed: a refusal
// comes before any connection, and an allowed input is shown to get past
// the check by failing later, on a workload name the worker does not know.
func TestPerfActivitiesEnforceThePolicy(t *testing.T) {
	const inline = "operations:\n  - name: one\n    sql: SELECT 1\n"
	envs := map[string]config.Environment{
		"staging":    {DSN: "postgres://fkrollout@127.0.0.1:1/staging"},
		"production": {DSN: "postgres://fkrollout@127.0.0.1:1/production"},
		"dev":        {DSN: "postgres://fkrollout@127.0.0.1:1/dev"},
	}
	strict := perfCfg(envs, "staging")
	strict.Policy.Environments["production"] = policy.Environment{Approvers: []string{"role:dba"}, MinApprovals: 2}
	devMode := perfCfg(envs, "staging")
	devMode.Policy.TrustClientIdentity = true
	devMode.Policy.Environments["production"] = policy.Environment{Approvers: []string{"role:dba"}}

	const passed = `perf workload "unknown-workload" is not configured`
	cases := []struct {
		name     string
		cfg      *config.Config
		env      string
		workload string
		yaml     string
		want     string
	}{
		{name: "perf environment", cfg: strict, env: "staging", want: passed},
		{name: "inline SQL", cfg: strict, env: "staging", yaml: inline, want: "inline SQL is not accepted; name a workload from the worker configuration"},
		{name: "inline SQL in development mode", cfg: devMode, env: "dev", yaml: inline, want: "inline SQL is not accepted"},
		{name: "inline SQL next to a name", cfg: strict, env: "staging", workload: "demo", yaml: inline, want: "inline SQL is not accepted"},
		{name: "policy without perf", cfg: strict, env: "production", want: `environment "production" may not run the perf phase`},
		{name: "no policy entry", cfg: strict, env: "dev", want: `environment "dev" has no policy on this worker`},
		{name: "development mode, no policy entry", cfg: devMode, env: "dev", want: passed},
		{name: "development mode, policy without perf", cfg: devMode, env: "production", want: `environment "production" may not run the perf phase`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, _ := newEnv(t, c.cfg)
			workload := c.workload
			if workload == "" && c.yaml == "" {
				workload = "unknown-workload"
			}
			for _, call := range []struct {
				act string
				in  any
			}{
				{rollout.ActPerfRun, rollout.PerfRunInput{Environment: c.env, RolloutID: "r-guard", Label: "baseline",
					Workload: workload, WorkloadYAML: c.yaml, Workers: 1, Iterations: 1}},
				{rollout.ActPerfExplain, rollout.PerfExplainInput{Environment: c.env, RolloutID: "r-guard",
					Workload: workload, WorkloadYAML: c.yaml, CreateIndexes: true}},
				{rollout.ActPerfInterleave, rollout.PerfInterleaveInput{Environment: c.env, RolloutID: "r-guard",
					Workload: workload, WorkloadYAML: c.yaml, Workers: 1, Pairs: 2, Iterations: 1}},
			} {
				_, err := env.ExecuteActivity(call.act, call.in)
				require.Error(t, err, call.act)
				typ, nonRetryable := appErrType(t, err)
				assert.Equal(t, steps.ErrTypeConfig, typ, call.act)
				assert.True(t, nonRetryable, call.act)
				assert.Contains(t, err.Error(), c.want, call.act)
			}
		})
	}
}
