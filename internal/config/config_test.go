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
