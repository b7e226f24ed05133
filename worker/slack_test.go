package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/slackbot"
)

// TestSetupSlack checks the worker's start-up decision: no Slack is a
// working configuration that says so; half a configuration or a typo is an
// error before anything connects; secrets come from the environment and
// never reach the log.
func TestSetupSlack(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr string
		wantLog string
		enabled bool
	}{
		{name: "no slack section", wantLog: "Slack not configured: notifications off, decide gates from the CLI or the Temporal UI"},
		{name: "token without channel", env: map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1"},
			wantErr: "both bot_token and channel are required"},
		{name: "typo in a key", yaml: "slack:\n  channel: C1\n  signing_secrte: x\n", env: map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1"},
			wantErr: `unknown setting "signing_secrte"`},
		{name: "http mode without signing secret", yaml: "slack:\n  channel: C1\n", env: map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1"},
			wantErr: "signing_secret is required"},
		{name: "http mode without listen_addr", yaml: "slack:\n  channel: C1\n",
			env:     map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1", "FKROLLOUT_SLACK_SIGNING_SECRET": "s"},
			wantErr: "slack.listen_addr is required unless socket_mode is on"},
		{name: "http mode", yaml: "slack:\n  channel: C1\n  listen_addr: 127.0.0.1:0\n",
			env:     map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-secret-token", "FKROLLOUT_SLACK_SIGNING_SECRET": "s3cr3t-signing"},
			wantLog: "Slack on (HTTP interactions on 127.0.0.1:0), channel C1", enabled: true},
		{name: "socket mode", yaml: "slack:\n  channel: C1\n  socket_mode: true\n",
			env:     map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-secret-token", "FKROLLOUT_SLACK_APP_TOKEN": "xapp-secret-app"},
			wantLog: "Slack on (Socket Mode), channel C1", enabled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "worker.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o600))
			}
			cfg, err := config.LoadFrom(path, func(k string) (string, bool) {
				if k == "\x00names" {
					return "", true
				}
				v, ok := tc.env[k]
				return v, ok
			})
			require.NoError(t, err)
			var logBuf syncBuffer
			n, bot, err := setupSlack(cfg, nil, slog.New(slog.NewJSONHandler(&logBuf, nil)))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Contains(t, logBuf.String(), tc.wantLog)
			for _, s := range tc.env {
				assert.NotContains(t, logBuf.String(), s, "secret in the start-up log")
			}
			if !tc.enabled {
				assert.Nil(t, bot)
				assert.IsType(t, notify.LogNotifier{}, n)
				return
			}
			require.NotNil(t, bot)
			assert.IsType(t, &slackbot.Notifier{}, n)
			assert.Same(t, bot.Notifier, n)
		})
	}
}
