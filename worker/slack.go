package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/slackbot"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// setupSlack decodes the configuration's `slack:` section, applies the
// FKROLLOUT_SLACK_* secrets and says at start how gates can be decided.
// Without Slack it returns the log notifier and a nil bot: the product works
// fully from the CLI and the Temporal UI. With Slack, the bot's notifier
// posts the rollout's thread and gate messages, and its interactions send
// gate Updates through c, signed as the Slack signer (slackDecider).
func setupSlack(cfg *config.Config, c client.Client, log *slog.Logger) (notify.Notifier, *slackbot.Bot, error) {
	scfg, err := slackConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	log.Info(scfg.Describe(), "slack", scfg)
	if !scfg.Enabled() {
		if err := scfg.Validate(); err != nil { // half a configuration is a mistake, not "off"
			return nil, nil, err
		}
		return notify.LogNotifier{Log: log}, nil, nil
	}
	if err := scfg.Validate(); err != nil {
		return nil, nil, err
	}
	dec := newSlackDecider(c, scfg.Signer(), log.With("component", "slack"))
	bot, err := slackbot.New(scfg, dec, log)
	if err != nil {
		return nil, nil, err
	}
	if !scfg.SocketMode && scfg.ListenAddr == "" {
		// The worker serves interactions only on listen_addr: without it
		// every button click would go nowhere.
		return nil, nil, errors.New(`slack: slack.listen_addr is required unless socket_mode is on: the address Slack posts button clicks to, e.g. ":8090"`)
	}
	// The handler logs every rejected request; the counter makes a flood
	// or a misconfigured secret visible on /metrics.
	bot.HTTP.Rejected = func(reason string) { slackRejected.WithLabelValues(reason).Inc() }
	return bot.Notifier, bot, nil
}

// slackConfig is the `slack:` section with the FKROLLOUT_SLACK_* secrets.
func slackConfig(cfg *config.Config) (slackbot.Config, error) {
	scfg, err := slackbot.DecodeConfig(&cfg.Slack)
	if err != nil {
		return slackbot.Config{}, err
	}
	return scfg.WithSecrets(cfg.SlackSecrets.BotToken, cfg.SlackSecrets.SigningSecret, cfg.SlackSecrets.AppToken), nil
}

// slackSignerPublicKey is the public key ("ed25519:<base64>") of the key
// this worker signs Slack users' decisions and refusal records with (key
// id identity.SlackSigner), or "" when Slack is off or its section does not
// decode (setupSlack reports that). The worker puts it into every rollout's
// effective policy, which is how the workflow trusts the actor, roles and
// slack_user of a decision made in Slack. It derives from the signing
// secret (HTTP mode) or the app token (Socket Mode): workers sharing the
// configuration agree on it, and rotating that secret changes it.
func slackSignerPublicKey(cfg *config.Config) string {
	scfg, err := slackConfig(cfg)
	if err != nil {
		return ""
	}
	return scfg.SignerPublicKey()
}

// slackRejected counts requests the Slack HTTP endpoint rejected, by reason
// (slackbot.RejectReasons). It is served on /metrics once registered with
// registerSlackMetrics.
var slackRejected = prom.NewCounterVec(prom.CounterOpts{
	Name: "fkrollout_slack_rejected_requests_total",
	Help: "Requests to the Slack interaction endpoint rejected, by reason (bad_signature, stale_timestamp, replay, rate_limited, body_too_large, malformed, method).",
}, []string{"reason"})

// registerSlackMetrics adds the Slack endpoint's counter, every reason
// starting at zero, to the registry the worker serves on /metrics.
func registerSlackMetrics(r prom.Registerer) error {
	for _, reason := range slackbot.RejectReasons {
		slackRejected.WithLabelValues(reason)
	}
	if err := r.Register(slackRejected); err != nil {
		if _, ok := errors.AsType[prom.AlreadyRegisteredError](err); !ok {
			return fmt.Errorf("register slack metrics: %w", err)
		}
	}
	return nil
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
// plain summary (Slack does not render the UI's markdown tables). The
// summary holds plan names, reasons and actors: escaped for mrkdwn.
func statusSummary(ctx context.Context, c client.Client, rolloutID string) (string, error) {
	v, err := c.QueryWorkflow(ctx, rolloutID, "", rollout.QueryStatus)
	if err != nil {
		return "", fmt.Errorf("status of %s: %w", rolloutID, err)
	}
	var st rollout.Status
	if err := v.Get(&st); err != nil {
		return "", fmt.Errorf("status of %s: %w", rolloutID, err)
	}
	return "```\n" + mdtext.Slack(st.Summary()) + "```", nil
}

// slackDecider is the Temporal decider of the worker's Slack glue. The bot
// only builds a decision for a Slack user it verified (signed request) and
// found in slack.users; this signs it as the Slack signer into a
// workflows.DecisionInput for the rollout's current run, so the workflow's
// validator can trust its actor, roles and slack_user. It also records
// refused clicks: an Update rejected by the validator leaves no trace in
// history, so the refusal (who clicked what, and why it was refused) is
// signalled to the rollout, signed the same way (unsigned records are
// dropped), and kept in Status.Refusals. The signal only records; it never
// decides.
type slackDecider struct {
	slackbot.TemporalDecider
	key ed25519.PrivateKey
	now func() time.Time
	log *slog.Logger
}

func newSlackDecider(c client.Client, key ed25519.PrivateKey, log *slog.Logger) *slackDecider {
	d := &slackDecider{key: key, now: time.Now, log: log}
	d.TemporalDecider = slackbot.TemporalDecider{Client: c, UpdateName: approval.UpdateDecide,
		Summarize: statusSummary, Prepare: d.prepare}
	return d
}

// runID is the rollout's current run: every claim names it.
func (d *slackDecider) runID(ctx context.Context, rolloutID string) (string, error) {
	desc, err := d.Client.DescribeWorkflowExecution(ctx, rolloutID, "")
	if err != nil {
		return "", err
	}
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	if runID == "" {
		return "", fmt.Errorf("describe %s: no run id", rolloutID)
	}
	return runID, nil
}

// prepare signs dec for the rollout's current run (slackbot.TemporalDecider.Prepare).
func (d *slackDecider) prepare(ctx context.Context, rolloutID string, dec slackbot.Decision) (slackbot.PreparedUpdate, error) {
	if d.key == nil {
		return slackbot.PreparedUpdate{}, errors.New("slack: no signer key (signing secret or app token missing)")
	}
	runID, err := d.runID(ctx, rolloutID)
	if err != nil {
		return slackbot.PreparedUpdate{}, err
	}
	in := dec.DecisionInput
	in.Via, in.Proof = "slack", nil
	proof := identity.Sign(d.key, identity.SlackSigner, approval.DecisionClaim(rolloutID, runID, in), identity.NewNonce(), d.now())
	in.Proof = &proof
	return slackbot.PreparedUpdate{Arg: in, RunID: runID}, nil
}

func (d *slackDecider) Decide(ctx context.Context, rolloutID string, dec slackbot.Decision) (slackbot.Outcome, error) {
	out, err := d.TemporalDecider.Decide(ctx, rolloutID, dec)
	refused, ok := errors.AsType[*slackbot.RefusedError](err)
	if !ok {
		return out, err
	}
	if serr := d.recordRefusal(ctx, rolloutID, dec, refused.Reason); serr != nil {
		// The rollout may not exist or may have ended; the clicker is told
		// either way.
		d.log.WarnContext(ctx, "slack: refusal not recorded in the rollout", "rollout", rolloutID, "gate", dec.GateID, "actor", dec.Actor, "err", serr)
	}
	return out, err
}

// recordRefusal signals a signed refusal record to the rollout's current run.
func (d *slackDecider) recordRefusal(ctx context.Context, rolloutID string, dec slackbot.Decision, reason string) error {
	if d.key == nil {
		return errors.New("no signer key")
	}
	runID, err := d.runID(ctx, rolloutID)
	if err != nil {
		return err
	}
	rec := approval.Refusal{Signal: "slack:" + dec.Choice, Actor: dec.Actor, GateID: dec.GateID, Reason: reason}
	proof := identity.Sign(d.key, identity.SlackSigner, approval.RefusalClaim(rolloutID, runID, rec), identity.NewNonce(), d.now())
	rec.Proof = &proof
	return d.Client.SignalWorkflow(ctx, rolloutID, runID, approval.SignalRecordRefusal, rec)
}
