package slackbot

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestDecodeConfig(t *testing.T) {
	var file struct {
		Slack yaml.Node `yaml:"slack"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(`
slack:
  bot_token: xoxb-from-file
  signing_secret: s3cret
  channel: C0ROLLOUT
  on_call_group: S0ONCALL
  listen_addr: ":8090"
  users:
    U0ALICE: alice@example.com
  approver_groups:
    S0DBA: dba
  group_cache_ttl: 2m
`), &file))
	cfg, err := DecodeConfig(&file.Slack)
	require.NoError(t, err)
	assert.Equal(t, Config{BotToken: "xoxb-from-file", SigningSecret: "s3cret", Channel: "C0ROLLOUT",
		OnCallGroup: "S0ONCALL", ListenAddr: ":8090", Users: map[string]string{"U0ALICE": "alice@example.com"},
		ApproverGroups: map[string]string{"S0DBA": "dba"}, GroupCacheTTL: "2m"}, cfg)
	require.NoError(t, cfg.Validate())

	env := cfg.WithSecrets("xoxb-from-env", "", "")
	assert.Equal(t, "xoxb-from-env", env.BotToken)
	assert.Equal(t, "s3cret", env.SigningSecret, "empty overrides keep the file's value")

	var none struct {
		Slack yaml.Node `yaml:"slack"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("other: 1\n"), &none))
	cfg, err = DecodeConfig(&none.Slack)
	require.NoError(t, err)
	assert.False(t, cfg.Enabled())

	require.NoError(t, yaml.Unmarshal([]byte("slack:\n  bot_token: xoxb-1\n  signing_secrt: typo\n"), &file))
	_, err = DecodeConfig(&file.Slack)
	assert.ErrorContains(t, err, `unknown setting "signing_secrt" (line 3)`)
}
