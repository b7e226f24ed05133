package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/slackbot"
	"github.com/fkrollout/fkrollout/workflows"
)

// setupSlack decodes the configuration's `slack:` section, applies the
// FKROLLOUT_SLACK_* secrets and says at start how gates can be decided.
// Without Slack it returns the log notifier and a nil bot: the product works
// fully from the CLI and the Temporal UI. With Slack, the bot's notifier
// posts the rollout's thread and gate messages, and its interactions send
// gate Updates through c.
func setupSlack(cfg *config.Config, c client.Client, log *slog.Logger) (notify.Notifier, *slackbot.Bot, error) {
	scfg, err := slackbot.DecodeConfig(&cfg.Slack)
	if err != nil {
		return nil, nil, err
	}
	scfg = scfg.WithSecrets(cfg.SlackSecrets.BotToken, cfg.SlackSecrets.SigningSecret, cfg.SlackSecrets.AppToken)
	log.Info(scfg.Describe(), "slack", scfg)
	if !scfg.Enabled() {
		if err := scfg.Validate(); err != nil { // half a configuration is a mistake, not "off"
			return nil, nil, err
		}
		return notify.LogNotifier{Log: log}, nil, nil
	}
	dec := &refusalRecorder{
		TemporalDecider: slackbot.TemporalDecider{Client: c, UpdateName: workflows.UpdateDecide, Summarize: statusSummary},
		log:             log.With("component", "slack"),
	}
	bot, err := slackbot.New(scfg, dec, log)
	if err != nil {
		return nil, nil, err
	}
	if !scfg.SocketMode && scfg.ListenAddr == "" {
		// The worker serves interactions only on listen_addr: without it
		// every button click would go nowhere.
		return nil, nil, errors.New(`slack: slack.listen_addr is required unless socket_mode is on: the address Slack posts button clicks to, e.g. ":8090"`)
	}
	return bot.Notifier, bot, nil
}

// startSlack receives interactions (HTTP on listen_addr, or Socket Mode)
// until the returned stop is called; stop waits for in-flight decisions.
// A failing receiver is logged, not fatal: notifications still go out and
// gates stay decidable from the CLI and the UI.
func startSlack(ctx context.Context, bot *slackbot.Bot, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := bot.Run(ctx); err != nil {
			log.Error("slack interactions stopped; decide gates from the CLI or the Temporal UI", "error", err)
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// statusSummary answers "/fkrollout status <id>" with the status query's
// plain summary (Slack does not render the UI's markdown tables).
func statusSummary(ctx context.Context, c client.Client, rolloutID string) (string, error) {
	v, err := c.QueryWorkflow(ctx, rolloutID, "", workflows.QueryStatus)
	if err != nil {
		return "", fmt.Errorf("status of %s: %w", rolloutID, err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return "", fmt.Errorf("status of %s: %w", rolloutID, err)
	}
	return "```\n" + st.Summary() + "```", nil
}

// refusalRecorder is the Temporal decider plus a record of refused clicks.
// An Update rejected by the workflow's validator leaves no trace in history,
// so the refusal (who clicked what, and why it was refused) is signalled to
// the rollout, which keeps it in Status.Refusals. The signal only records;
// it never decides.
type refusalRecorder struct {
	slackbot.TemporalDecider
	log *slog.Logger
}

func (d *refusalRecorder) Decide(ctx context.Context, rolloutID string, dec slackbot.Decision) (slackbot.Outcome, error) {
	out, err := d.TemporalDecider.Decide(ctx, rolloutID, dec)
	refused, ok := errors.AsType[*slackbot.RefusedError](err)
	if !ok {
		return out, err
	}
	rec := workflows.Refusal{Signal: "slack:" + dec.Choice, Actor: dec.Actor, GateID: dec.GateID, Reason: refused.Reason}
	if serr := d.Client.SignalWorkflow(ctx, rolloutID, "", workflows.SignalRecordRefusal, rec); serr != nil {
		// The rollout may not exist or may have ended; the clicker is told
		// either way.
		d.log.WarnContext(ctx, "slack: refusal not recorded in the rollout", "rollout", rolloutID, "gate", dec.GateID, "actor", dec.Actor, "err", serr)
	}
	return out, err
}
