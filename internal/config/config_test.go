package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lookupFrom(m map[string]string) func(string) (string, bool) {
	var names []string
	for k := range m {
		if strings.HasPrefix(k, "FKROLLOUT_DSN_") {
			names = append(names, k)
		}
	}
	return func(k string) (string, bool) {
		if k == "\x00names" {
			return strings.Join(names, "\n"), true
		}
		v, ok := m[k]
		return v, ok
	}
}

func TestLoadFileAndOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fkrollout.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
task_queue: rollouts
environments:
  staging:
    dsn: postgres://app:pw@staging:5432/apms
  production:
    dsn_env: PROD_DSN
    deploy_hooks:
      - name: restart-api
        command: [pm2, restart, apms-api-production]
        timeout: 2m
    smoke_checks:
      - name: health
        url: https://apms.example.com/health
lock:
  lock_timeout: 250ms
  attempts: 12
`), 0o600))
	env := map[string]string{
		"PROD_DSN":                  "postgres://app:prodsecret@prod:5432/apms",
		"FKROLLOUT_DSN_STAGING":     "postgres://app:override@staging2:5432/apms",
		"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-123",
	}
	c, err := LoadFrom(path, lookupFrom(env))
	require.NoError(t, err)
	assert.Equal(t, "rollouts", c.TaskQueue)
	assert.Equal(t, []string{"production", "staging"}, c.EnvironmentNames())
	assert.Equal(t, env["PROD_DSN"], c.Environments["production"].DSN)
	assert.Equal(t, env["FKROLLOUT_DSN_STAGING"], c.Environments["staging"].DSN, "FKROLLOUT_DSN_<ENV> wins over the file")
	assert.Equal(t, 2*time.Minute, c.Environments["production"].DeployHooks[0].TimeoutOr(time.Hour))
	p, err := c.LockPolicy()
	require.NoError(t, err)
	assert.Equal(t, 250*time.Millisecond, p.LockTimeout)
	assert.Equal(t, 12, p.Attempts)
	secrets := strings.Join(c.Secrets(), " ")
	for _, s := range []string{"prodsecret", "override", "xoxb-123", env["PROD_DSN"]} {
		assert.Contains(t, secrets, s)
	}
	_, err = c.Environment("qa")
	assert.ErrorContains(t, err, `environment "qa" is not configured`)
}

func TestValidateNamesEveryProblem(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
environments:
  staging: {}
  production:
    dsn: postgres://x@y/z
    deploy_hooks:
      - name: ""
lock:
  lock_timeout: soon
`), 0o600))
	_, err := LoadFrom(path, lookupFrom(nil))
	require.Error(t, err)
	for _, want := range []string{`environment "staging": no DSN`, "deploy_hooks[0]", "lock.lock_timeout"} {
		assert.ErrorContains(t, err, want)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "typo.yaml")
	require.NoError(t, os.WriteFile(path, []byte("enviroments: {}\n"), 0o600))
	_, err := LoadFrom(path, lookupFrom(nil))
	assert.ErrorContains(t, err, "enviroments")
}

func TestLogValueHidesDSNs(t *testing.T) {
	c, err := LoadFrom("", lookupFrom(map[string]string{"FKROLLOUT_DSN_STAGING": "postgres://u:hunter2@h/db"}))
	require.NoError(t, err)
	assert.NotContains(t, c.LogValue().String(), "hunter2")
	assert.Contains(t, c.LogValue().String(), "staging")
}

func TestPerfAndMonitorDSNs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fkrollout.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
environments:
  staging:
    dsn: postgres://fkrollout:main-pw@db/apms
  production:
    dsn: postgres://fkrollout:main-pw2@db/apms
    perf_dsn: postgres://fkrollout_perf:perf-pw@db/apms
    monitor_dsn_env: PROD_MONITOR_DSN
`), 0o600))
	c, err := LoadFrom(path, lookupFrom(map[string]string{"PROD_MONITOR_DSN": "postgres://fkrollout_monitor:mon-pw@db/apms"}))
	require.NoError(t, err)
	prod, staging := c.Environments["production"], c.Environments["staging"]
	assert.Equal(t, "postgres://fkrollout_perf:perf-pw@db/apms", prod.PerfDSNOrMain())
	assert.Equal(t, "postgres://fkrollout_monitor:mon-pw@db/apms", prod.MonitorDSNOrMain())
	assert.Equal(t, staging.DSN, staging.PerfDSNOrMain(), "no perf_dsn: the main DSN")
	assert.Equal(t, staging.DSN, staging.MonitorDSNOrMain(), "no monitor_dsn: the main DSN")
	secrets := c.Secrets()
	for _, s := range []string{"perf-pw", "mon-pw", prod.PerfDSN, prod.MonitorDSN} {
		assert.Contains(t, secrets, s)
	}
	assert.NotContains(t, c.LogValue().String(), "pw")
}

func TestPerfAndMonitorDSNValidation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
environments:
  production:
    dsn: postgres://app@db/apms
    perf_dsn: "postgres://perf:perf-secret@db:notaport/apms"
    monitor_dsn_env: UNSET_MONITOR_DSN
`), 0o600))
	_, err := LoadFrom(path, lookupFrom(nil))
	require.Error(t, err)
	assert.ErrorContains(t, err, `environment "production": perf_dsn does not parse`)
	assert.ErrorContains(t, err, `environment "production": monitor_dsn_env names UNSET_MONITOR_DSN, which is unset or empty`)
	assert.NotContains(t, err.Error(), "perf-secret", "a DSN that does not parse is never echoed")
}

func TestHookAndSmokeCheckSecrets(t *testing.T) {
	t.Setenv("FKR_TEST_DEPLOY_TOKEN", "inherited-deploy-token")
	path := filepath.Join(t.TempDir(), "fkrollout.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
environments:
  production:
    dsn: postgres://app@db/apms
    deploy_hooks:
      - name: restart
        command: [deploy, restart]
        env: {API_TOKEN: hook-env-token}
        inherit_env: [FKR_TEST_DEPLOY_TOKEN, FKR_TEST_UNSET]
    smoke_checks:
      - name: health
        url: https://apms.example.com/health
        headers: {Authorization: "Bearer smoke-bearer-token", Content-Type: application/json}
`), 0o600))
	c, err := LoadFrom(path, lookupFrom(nil))
	require.NoError(t, err)
	h := c.Environments["production"].DeployHooks[0]
	assert.Equal(t, []string{"FKR_TEST_DEPLOY_TOKEN", "FKR_TEST_UNSET"}, h.InheritEnv)
	secrets := c.Secrets()
	for _, s := range []string{"hook-env-token", "inherited-deploy-token", "Bearer smoke-bearer-token", "smoke-bearer-token"} {
		assert.Contains(t, secrets, s)
	}
	assert.NotContains(t, secrets, "application/json", "descriptive headers are no secret")
	for _, s := range secrets {
		assert.NotEmpty(t, s)
	}
}

func TestHookEnvNamesAreValidated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
environments:
  production:
    dsn: postgres://app@db/apms
    deploy_hooks:
      - name: restart
        command: [deploy]
        env: {"A=B": x}
        inherit_env: ["", "1X", OK_NAME]
`), 0o600))
	_, err := LoadFrom(path, lookupFrom(nil))
	require.Error(t, err)
	assert.ErrorContains(t, err, `env name "A=B" is not a variable name`)
	assert.ErrorContains(t, err, `inherit_env entry "" is not a variable name`)
	assert.ErrorContains(t, err, `inherit_env entry "1X" is not a variable name`)
	assert.NotContains(t, err.Error(), "OK_NAME")
}
