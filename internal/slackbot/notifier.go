package slackbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/slack-go/slack"
)

// ClientTimeout bounds one Slack call. The client never retries (the Notify
// activity does), so this is its whole budget per attempt, and it stays
// under the Notify activity's timeout: an attempt always ends by its own
// error, and the next one finds what it posted (idempotent.go).
const ClientTimeout = 15 * time.Second

// NewClient builds the Web API client from the configuration. extra options
// come last so tests can override the HTTP client.
func NewClient(cfg Config, extra ...slack.Option) *slack.Client {
	opts := []slack.Option{
		// A hung Slack must not hang a notification activity past its own timeout.
		slack.OptionHTTPClient(&http.Client{Timeout: ClientTimeout}),
	}
	if cfg.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.APIURL))
	}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	return slack.New(cfg.BotToken, append(opts, extra...)...)
}

// PostResult identifies the posted message. For KindStarted it is the thread
// parent: the workflow stores it and passes it back as Event.Thread. For
// KindGateOpened it is the gate message: passed back as Event.Message when the
// gate is decided, so the buttons can be removed.
type PostResult struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// Ref returns the result as a MessageRef.
func (p PostResult) Ref() MessageRef { return MessageRef{Channel: p.Channel, TS: p.TS} }

// Notifier posts rollout events. It holds no per-rollout state: thread and
// message timestamps travel in the events, so any worker can post any event.
// Every method is bounded by ctx; callers on a safety path (rollback) should
// post with a short deadline after the safety action, never before it.
type Notifier struct {
	api     *slack.Client
	channel string
	onCall  string
	// users and groups are the configuration's slack.users (Slack user →
	// identity) and approver_groups (user group → role), read backwards
	// to mention a gate's approvers.
	users  map[string]string
	groups map[string]string
	log    *slog.Logger
	// posted records the keys of messages posted (idempotent.go).
	posted postedRecord
}

var _ notify.Notifier = (*Notifier)(nil)

// Notify implements notify.Notifier for the workflow's Notify activity: the
// receipt's Ref is what the workflow stores (thread parent, gate message).
func (n *Notifier) Notify(ctx context.Context, ev notify.Event) (notify.Receipt, error) {
	res, err := n.Post(ctx, ev)
	if err != nil {
		return notify.Receipt{}, err
	}
	return notify.Receipt{Ref: res.Ref()}, nil
}

// NewNotifier builds a notifier posting to cfg.Channel.
func NewNotifier(api *slack.Client, cfg Config, log *slog.Logger) *Notifier {
	if log == nil {
		log = slog.Default()
	}
	return &Notifier{api: api, channel: cfg.Channel, onCall: cfg.OnCallGroup, users: cfg.Users, groups: cfg.ApproverGroups, log: log}
}

// Post renders ev and posts it: KindStarted as a new thread parent in the
// channel, everything else as a reply in ev.Thread (or in the channel when the
// thread is unknown). For KindGateDecided with ev.Message and ev.Gate set, the
// gate message is first updated in place to its decided form, so decisions
// taken from the CLI or UI also remove the buttons.
func (n *Notifier) Post(ctx context.Context, ev Event) (PostResult, error) {
	if ev.RolloutID == "" {
		return PostResult{}, errors.New("slack post: event has no rollout id")
	}
	var (
		blocks   []slack.Block
		fallback string
		opts     []slack.MsgOption
		// mentions are Slack mention tokens for the fallback text (which
		// is what pings people); everything else in it is escaped.
		mentions string
	)
	switch ev.Kind {
	case KindReport:
		return n.postReport(ctx, ev)
	case KindStarted:
		blocks, fallback = StartedBlocks(ev), "FK rollout "+ev.RolloutID+" started"
	case KindGateOpened:
		if ev.Gate == nil {
			return PostResult{}, fmt.Errorf("slack post %s: gate-opened event without gate", ev.RolloutID)
		}
		blocks = GateBlocks(ev)
		fallback = fmt.Sprintf("Rollout %s waits for a %s decision (gate %s)", ev.RolloutID, ev.Gate.Kind, ev.Gate.ID)
		if m := n.gateMentions(ev.Gate); m != "" {
			blocks = append([]slack.Block{section(m)}, blocks...)
			mentions = m
		}
	case KindGateDecided:
		if ev.Decision == nil {
			return PostResult{}, fmt.Errorf("slack post %s: gate-decided event without decision", ev.RolloutID)
		}
		if !ev.Message.IsZero() && ev.Gate != nil {
			if err := n.UpdateDecided(ctx, ev.Message.Channel, ev.Message.TS, ev, *ev.Decision); err != nil {
				// The thread reply below still tells the channel; log and go on.
				n.log.WarnContext(ctx, "slack: update decided gate message", "rollout", ev.RolloutID, "err", err)
			}
		}
		blocks = []slack.Block{section(DecisionText(*ev.Decision))}
		fallback = fmt.Sprintf("Rollout %s: gate decided (%s)", ev.RolloutID, ev.Decision.Choice)
	case KindRolledBack:
		blocks = RollbackBlocks(ev, n.onCall)
		fallback = "Rollout " + ev.RolloutID + " rolled back"
		opts = append(opts, slack.MsgOptionBroadcast())
	case KindFailed:
		blocks, fallback = LineBlocks(ev), "Rollout "+ev.RolloutID+" failed"
		opts = append(opts, slack.MsgOptionBroadcast())
	case KindPhase, KindCompleted:
		blocks, fallback = LineBlocks(ev), fmt.Sprintf("Rollout %s: %s", ev.RolloutID, ev.Kind)
		if ev.Kind == KindCompleted {
			opts = append(opts, slack.MsgOptionBroadcast())
		}
	default:
		return PostResult{}, fmt.Errorf("slack post %s: unknown event kind %q", ev.RolloutID, ev.Kind)
	}

	channel, thread := n.channel, ""
	if ev.Kind != KindStarted && !ev.Thread.IsZero() {
		channel, thread = ev.Thread.Channel, ev.Thread.TS
		opts = append(opts, slack.MsgOptionTS(ev.Thread.TS))
	} else if ev.Kind != KindStarted {
		// No thread (e.g. the started post failed): broadcast is meaningless.
		opts = nil
	}
	// The fallback text is mrkdwn too (and what notifications show): the
	// rollout and gate ids in it are escaped like everything else.
	text := esc(fallback)
	if mentions != "" {
		text = mentions + " " + text
	}
	opts = append(opts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...),
		slack.MsgOptionDisableLinkUnfurl())

	res, err := n.postOnce(ctx, channel, thread, 0, opts)
	if err != nil {
		return PostResult{}, fmt.Errorf("slack post %s %s: %w", ev.Kind, ev.RolloutID, err)
	}
	return res, nil
}

// postReport posts the completion report in the rollout's thread as
// markdown blocks (Slack renders headings, bold and tables), split at line
// boundaries into as many replies as Slack's per-message limit needs. The
// first reply's ref is returned.
func (n *Notifier) postReport(ctx context.Context, ev Event) (PostResult, error) {
	if strings.TrimSpace(ev.Report) == "" {
		return PostResult{}, fmt.Errorf("slack post %s: report event without report", ev.RolloutID)
	}
	channel, threadTS := n.channel, ""
	var thread []slack.MsgOption
	if !ev.Thread.IsZero() {
		channel, threadTS = ev.Thread.Channel, ev.Thread.TS
		thread = append(thread, slack.MsgOptionTS(ev.Thread.TS))
	}
	var first PostResult
	chunks := ReportChunks(ev.Report, maxMarkdownBlock)
	for i, chunk := range chunks {
		fallback := fmt.Sprintf("Completion report of rollout %s (%d/%d)", ev.RolloutID, i+1, len(chunks))
		opts := append(slices.Clone(thread), slack.MsgOptionText(esc(fallback), false),
			slack.MsgOptionBlocks(slack.NewMarkdownBlock("", chunk)), slack.MsgOptionDisableLinkUnfurl())
		res, err := n.postOnce(ctx, channel, threadTS, i, opts)
		if err != nil {
			return first, fmt.Errorf("slack post report %s (part %d/%d): %w", ev.RolloutID, i+1, len(chunks), err)
		}
		if i == 0 {
			first = res
		}
	}
	return first, nil
}

// maxMarkdownBlock stays under Slack's 12 000-character limit for the
// markdown blocks of one message.
const maxMarkdownBlock = 11000

// ReportChunks splits markdown at line boundaries into pieces of at most
// limit bytes (a single longer line is cut).
func ReportChunks(md string, limit int) []string {
	var chunks []string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(md, "\n") {
		for len(line) > limit {
			if cur.Len() > 0 {
				chunks = append(chunks, cur.String())
				cur.Reset()
			}
			chunks = append(chunks, line[:limit])
			line = line[limit:]
		}
		if cur.Len()+len(line) > limit {
			chunks = append(chunks, cur.String())
			cur.Reset()
		}
		cur.WriteString(line)
	}
	if strings.TrimSpace(cur.String()) != "" {
		chunks = append(chunks, cur.String())
	}
	return chunks
}

// UpdateDecided rewrites the gate message (channel, ts) in place: the gate
// body from ev.Gate without buttons, plus the decision line.
func (n *Notifier) UpdateDecided(ctx context.Context, channel, ts string, ev Event, d GateDecision) error {
	if ev.Gate == nil {
		return fmt.Errorf("slack update %s: no gate to render", ev.RolloutID)
	}
	return n.updateBlocks(ctx, channel, ts, DecidedBlocks(gateBody(ev), d),
		fmt.Sprintf("Gate %s decided: %s", ev.Gate.ID, d.Choice))
}

func (n *Notifier) updateBlocks(ctx context.Context, channel, ts string, blocks []slack.Block, fallback string) error {
	if channel == "" || ts == "" {
		return errors.New("slack update: message channel and ts are required")
	}
	err := n.call(ctx, "chat.update", func(ctx context.Context) error {
		_, _, _, err := n.api.UpdateMessageContext(ctx, channel, ts,
			slack.MsgOptionText(esc(fallback), false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		return fmt.Errorf("slack update %s/%s: %w", channel, ts, err)
	}
	return nil
}

// call makes one Slack call and never retries it: the Notify activity's
// retry policy does, so retrying here too would multiply the calls per
// message (and wait inside an activity for a Retry-After Temporal can wait
// for without holding a slot). The error says how to retry (activityError).
func (n *Notifier) call(ctx context.Context, op string, fn func(context.Context) error) error {
	return activityError(op, fn(ctx))
}
