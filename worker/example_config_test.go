package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/slackbot"
)

// TestExampleConfigLoads keeps worker/fkrollout.example.yaml (which README
// points operators at) a configuration the worker accepts: every section
// decodes with unknown keys refused, DSNs come from the variables it names,
// and the Slack section is valid once the secrets are in the environment.
func TestExampleConfigLoads(t *testing.T) {
	env := map[string]string{
		"APMS_STAGING_DSN":               "postgres://app:staging-pw@staging:5432/apms",
		"APMS_PRODUCTION_DSN":            "postgres://app:prod-pw@production:5432/apms",
		"FKROLLOUT_SLACK_BOT_TOKEN":      "xoxb-example",
		"FKROLLOUT_SLACK_SIGNING_SECRET": "signing-example",
	}
	lookup := func(k string) (string, bool) {
		if k == "\x00names" {
			return "", true
		}
		v, ok := env[k]
		return v, ok
	}
	cfg, err := config.LoadFrom("fkrollout.example.yaml", lookup)
	require.NoError(t, err)

	assert.Equal(t, []string{"production", "staging"}, cfg.EnvironmentNames())
	prod, err := cfg.Environment("production")
	require.NoError(t, err)
	assert.Equal(t, env["APMS_PRODUCTION_DSN"], prod.DSN)
	assert.True(t, prod.FullBackup)
	assert.Equal(t, "/var/lib/fkrollout/reports", cfg.ReportDir)
	require.Len(t, prod.DeployHooks, 2)
	assert.Equal(t, []string{"pm2", "restart", "apms-api-production"}, prod.DeployHooks[1].Command)
	assert.Len(t, prod.SmokeChecks, 2)

	lock, err := cfg.LockPolicy()
	require.NoError(t, err)
	assert.Equal(t, 8, lock.Attempts)
	assert.Equal(t, "500ms", lock.LockTimeout.String())

	assert.Equal(t, []string{"app-production", "pg-production"}, cfg.Monitor.DefaultSources("production"))
	assert.Equal(t, []string{"apms"}, cfg.PerfWorkloadNames())

	scfg, err := slackbot.DecodeConfig(&cfg.Slack)
	require.NoError(t, err)
	scfg = scfg.WithSecrets(cfg.SlackSecrets.BotToken, cfg.SlackSecrets.SigningSecret, cfg.SlackSecrets.AppToken)
	require.NoError(t, scfg.Validate())
	assert.True(t, scfg.Enabled())
	assert.Equal(t, "alice@example.com", scfg.Users["U0ALICE"])

	// The file itself holds no secret.
	for _, s := range cfg.Secrets() {
		assert.NotContains(t, mustRead(t, "fkrollout.example.yaml"), s)
	}
	assert.False(t, strings.Contains(mustRead(t, "fkrollout.example.yaml"), "xox"), "no token in the example file")
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
