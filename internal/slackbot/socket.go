package slackbot

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode receives interactions and slash commands over a Socket Mode
// WebSocket (for teams without public ingress) and hands them to the same
// core as the HTTP handler. api must carry the app-level token. It returns
// when ctx ends or the connection fails for good.
func RunSocketMode(ctx context.Context, api *slack.Client, x *Interactions, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	smc := socketmode.New(api)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case evt, ok := <-smc.Events:
				if !ok {
					return
				}
				dispatchSocketEvent(ctx, smc, x, log, evt)
			}
		}
	}()
	err := smc.RunContext(ctx)
	cancel()
	<-done
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("slack socket mode: %w", err)
	}
	return nil
}

func dispatchSocketEvent(ctx context.Context, smc *socketmode.Client, x *Interactions, log *slog.Logger, evt socketmode.Event) {
	var ack any
	switch evt.Type {
	case socketmode.EventTypeInteractive:
		ic, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			log.WarnContext(ctx, "slack socket: unexpected interactive payload", "type", fmt.Sprintf("%T", evt.Data))
			break
		}
		ack = x.HandleInteraction(ic)
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			log.WarnContext(ctx, "slack socket: unexpected slash payload", "type", fmt.Sprintf("%T", evt.Data))
			break
		}
		ack = x.HandleSlash(cmd)
	case socketmode.EventTypeConnected:
		log.InfoContext(ctx, "slack socket mode connected")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth:
		log.WarnContext(ctx, "slack socket mode", "event", string(evt.Type), "data", fmt.Sprint(evt.Data))
	}
	// Every envelope must be acknowledged, or Slack redelivers it.
	if evt.Request != nil && evt.Request.EnvelopeID != "" {
		if err := smc.AckCtx(ctx, evt.Request.EnvelopeID, ack); err != nil {
			log.WarnContext(ctx, "slack socket: ack", "envelope", evt.Request.EnvelopeID, "err", err)
		}
	}
}
