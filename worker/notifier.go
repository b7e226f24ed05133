package main

import (
	"context"
	"log/slog"

	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/notify"
)

// newNotifier chooses how rollout events reach people. Without Slack
// configured, events are logged and gates are decided from the CLI or the
// Temporal UI. The Slack integration (internal/slackbot) plugs in here: it
// returns its notifier and starts its interaction endpoint, using c to send
// gate Updates.
func newNotifier(ctx context.Context, cfg *config.Config, c client.Client, log *slog.Logger) (notify.Notifier, func(), error) {
	n, bot, err := setupSlack(cfg, c, log) // worker/slack.go
	if err != nil || bot == nil {
		return n, func() {}, err
	}
	return n, startSlack(ctx, bot, log), nil
}
