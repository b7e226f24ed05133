package slackbot

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/slack-go/slack"
)

// Decision is what a click asks the workflow to record: the gate Update's
// own input, without its proof. The worker's Decider signs it, as the Slack
// signer, and sends it with UpdateID as the Temporal update ID, so a double
// click or a Slack retry lands on the same Update and decides once. It is
// only built for a user mapped in Config.Users.
type Decision struct {
	approval.DecisionInput
	// UpdateID is the Temporal update ID, not part of the Update's input.
	UpdateID string `json:"-"`
}

// Outcome is what an accepted decision did to the gate.
type Outcome struct {
	// Closed: the gate is decided; its message loses the buttons.
	Closed bool `json:"closed"`
	// Waiting is how many more distinct approvers the gate needs (production
	// gates may need two); the buttons stay for them.
	Waiting int    `json:"waiting,omitempty"`
	Message string `json:"message,omitempty"`
}

// Decider performs decisions and answers status questions; TemporalDecider
// is the implementation the worker wires in (UpdateWorkflow / QueryWorkflow).
type Decider interface {
	// Decide returns the outcome when the workflow accepted the decision, a
	// *RefusedError when its validator rejected it (not allowed, four-eyes,
	// already decided, unknown gate), or any other error when it could not ask.
	Decide(ctx context.Context, rolloutID string, d Decision) (Outcome, error)
	// Status returns a short mrkdwn summary of the rollout, user-supplied
	// text in it escaped (it is posted as is).
	Status(ctx context.Context, rolloutID string) (string, error)
}

// RefusedError is a decision the workflow's validator rejected.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "decision refused: " + e.Reason }

// Refused builds a *RefusedError; Decider implementations return it for
// validator rejections.
func Refused(reason string) error { return &RefusedError{Reason: reason} }

// UpdateID is the stable Temporal update ID of one (gate, user, choice).
func UpdateID(gateID, slackUser, choice string) string {
	return "slack/" + gateID + "/" + slackUser + "/" + choice
}

// Interactions is the transport-independent core: the HTTP handler and the
// Socket Mode loop both hand it callbacks. Each Handle method returns the ack
// payload immediately (Slack wants an answer within 3 seconds) and runs the
// slow part (the Update, chat.update, response_url) in the background.
type Interactions struct {
	api   *slack.Client
	dec   Decider
	dir   *Directory
	log   *slog.Logger
	retry RetryPolicy
	// JobTimeout bounds each background job.
	jobTimeout time.Duration
	now        func() time.Time

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	pending map[string]pendingGate // channel/ts -> gate message awaiting a reason
}

// pendingGate keeps a gate message's blocks while its reason modal is open,
// because view_submission payloads do not carry the original message.
type pendingGate struct {
	blocks  []slack.Block
	expires time.Time
}

// NewInteractions builds the core. dec may be nil (notifications only): then
// clicks are answered with an explanation that decisions are unavailable.
func NewInteractions(api *slack.Client, dec Decider, dir *Directory, log *slog.Logger) *Interactions {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Interactions{
		api: api, dec: dec, dir: dir, log: log, retry: DefaultRetryPolicy(),
		jobTimeout: 60 * time.Second, now: time.Now,
		base: ctx, cancel: cancel, pending: map[string]pendingGate{},
	}
}

// Shutdown waits for background jobs until ctx ends, then cancels the rest.
func (x *Interactions) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { x.wg.Wait(); close(done) }()
	select {
	case <-done:
		x.cancel()
		return nil
	case <-ctx.Done():
		x.cancel()
		<-done
		return fmt.Errorf("slack interactions shutdown: %w", ctx.Err())
	}
}

// Wait blocks until every background job started so far has finished.
func (x *Interactions) Wait() { x.wg.Wait() }

func (x *Interactions) async(name string, fn func(ctx context.Context)) {
	if x.base.Err() != nil {
		x.log.Warn("slack job after shutdown dropped", "job", name)
		return
	}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		ctx, cancel := context.WithTimeout(x.base, x.jobTimeout)
		defer cancel()
		defer func() {
			if r := recover(); r != nil {
				x.log.Error("slack job panicked", "job", name, "panic", r)
			}
		}()
		fn(ctx)
	}()
}

// modalMeta travels in the reason modal's private_metadata.
type modalMeta struct {
	RolloutID   string `json:"r"`
	GateID      string `json:"g"`
	Choice      string `json:"c"`
	Label       string `json:"l"`
	Channel     string `json:"ch"`
	TS          string `json:"ts"`
	ResponseURL string `json:"u"`
}

// SlashAck is the immediate answer to a slash command.
type SlashAck struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

// viewErrors is the view_submission ack that keeps the modal open with errors.
type viewErrors struct {
	ResponseAction string            `json:"response_action"`
	Errors         map[string]string `json:"errors"`
}

// HandleInteraction processes one interaction callback and returns the ack
// payload (nil: empty ack).
func (x *Interactions) HandleInteraction(ic slack.InteractionCallback) any {
	switch ic.Type {
	case slack.InteractionTypeBlockActions:
		x.handleBlockActions(ic)
		return nil
	case slack.InteractionTypeViewSubmission:
		if ic.View.CallbackID != reasonCallbackID {
			return nil
		}
		return x.handleReason(ic)
	default:
		return nil
	}
}

func (x *Interactions) handleBlockActions(ic slack.InteractionCallback) {
	for _, a := range ic.ActionCallback.BlockActions {
		if a == nil || !strings.HasPrefix(a.ActionID, actionPrefix) {
			continue
		}
		v, err := decodeValue(a.Value)
		if err != nil {
			x.log.Warn("slack: ignoring malformed button", "action_id", a.ActionID, "err", err)
			continue
		}
		channel, ts := ic.Container.ChannelID, ic.Container.MessageTs
		if channel == "" {
			channel = ic.Channel.ID
		}
		if ts == "" {
			ts = ic.Message.Timestamp
		}
		user := ic.User.ID
		blocks := ic.Message.Blocks.BlockSet
		responseURL := ic.ResponseURL

		// An unmapped user is told at once, before any reason dialog:
		// nothing they click reaches the workflow.
		if x.dec != nil && !x.mapped(user) {
			x.async("unmapped", func(ctx context.Context) { x.refuseUnmapped(ctx, v.RolloutID, v.GateID, v.Choice, user, responseURL) })
			continue
		}
		if v.NeedsReason {
			x.stash(channel, ts, blocks)
			meta := modalMeta{RolloutID: v.RolloutID, GateID: v.GateID, Choice: v.Choice, Label: v.Label,
				Channel: channel, TS: ts, ResponseURL: responseURL}
			triggerID := ic.TriggerID
			x.async("views.open", func(ctx context.Context) {
				b, _ := json.Marshal(meta)
				label := v.Label
				if label == "" {
					label = approval.Label(v.Choice)
				}
				// trigger_id expires 3 s after the click: one attempt, no retries.
				if _, err := x.api.OpenViewContext(ctx, triggerID, ReasonModal(label, string(b))); err != nil {
					x.log.ErrorContext(ctx, "slack: open reason modal", "rollout", v.RolloutID, "gate", v.GateID, "err", err)
					x.respond(ctx, responseURL, ":warning: Could not open the reason dialog ("+esc(err.Error())+"). Try again, or decide from the CLI.")
				}
			})
			continue
		}
		x.async("decide", func(ctx context.Context) {
			x.decide(ctx, v.RolloutID, v.GateID, v.Choice, user, "", channel, ts, responseURL, blocks)
		})
	}
}

func (x *Interactions) handleReason(ic slack.InteractionCallback) any {
	var m modalMeta
	if err := json.Unmarshal([]byte(ic.View.PrivateMetadata), &m); err != nil || m.RolloutID == "" || m.GateID == "" {
		x.log.Warn("slack: reason modal with bad metadata", "err", err)
		return nil
	}
	reason := ""
	if ic.View.State != nil {
		reason = strings.TrimSpace(ic.View.State.Values[reasonBlockID][reasonActionID].Value)
	}
	if reason == "" {
		return viewErrors{ResponseAction: "errors", Errors: map[string]string{reasonBlockID: "A reason is required."}}
	}
	user := ic.User.ID
	blocks := x.peek(m.Channel, m.TS)
	x.async("decide", func(ctx context.Context) {
		x.decide(ctx, m.RolloutID, m.GateID, m.Choice, user, reason, m.Channel, m.TS, m.ResponseURL, blocks)
	})
	return nil
}

// decide asks the workflow, then tells the clicker and updates the message.
func (x *Interactions) decide(ctx context.Context, rolloutID, gateID, choice, user, reason, channel, ts, responseURL string, blocks []slack.Block) {
	log := x.log.With("rollout", rolloutID, "gate", gateID, "choice", choice, "user", user)
	if x.dec == nil {
		x.respond(ctx, responseURL, ":warning: This worker does not accept decisions from Slack. Use the CLI or the Temporal UI.")
		return
	}
	if x.dir == nil {
		x.refuseUnmapped(ctx, rolloutID, gateID, choice, user, responseURL)
		return
	}
	ap, ok := x.dir.Resolve(ctx, user)
	if !ok {
		x.refuseUnmapped(ctx, rolloutID, gateID, choice, user, responseURL)
		return
	}
	d := Decision{DecisionInput: approval.DecisionInput{GateID: gateID, Choice: choice, Actor: ap.Identity, Roles: ap.Roles,
		SlackUser: user, Reason: reason, Via: "slack"}, UpdateID: UpdateID(gateID, user, choice)}
	out, err := x.dec.Decide(ctx, rolloutID, d)
	if refused, ok := errors.AsType[*RefusedError](err); ok {
		log.InfoContext(ctx, "slack decision refused", "reason", refused.Reason)
		x.respond(ctx, responseURL, fmt.Sprintf(":no_entry: Your choice *%s* on gate `%s` of rollout `%s` was refused: %s",
			esc(approval.Label(choice)), esc(gateID), esc(rolloutID), esc(refused.Reason)))
		return
	}
	if err != nil {
		log.ErrorContext(ctx, "slack decision failed", "err", err)
		x.respond(ctx, responseURL, fmt.Sprintf(":warning: Could not record *%s* on gate `%s` of rollout `%s`: %s\nThe gate is still open; try again or decide from the CLI.",
			esc(approval.Label(choice)), esc(gateID), esc(rolloutID), esc(err.Error())))
		return
	}
	log.InfoContext(ctx, "slack decision accepted", "actor", d.Actor, "closed", out.Closed, "waiting", out.Waiting)
	rec := GateDecision{Actor: d.Actor, Choice: choice, Reason: reason, Time: x.now(), SlackUser: user, Via: "slack"}
	if !out.Closed {
		// A vote on a gate that needs more approvers: show it, keep the buttons.
		if len(blocks) > 0 && channel != "" && ts != "" {
			x.update(ctx, log, channel, ts, fmt.Sprintf("Gate %s: vote recorded", gateID), VoteBlocks(blocks, rec, out.Waiting))
		}
		x.respond(ctx, responseURL, fmt.Sprintf(":ballot_box_with_check: Vote recorded: *%s* on gate `%s`; %d more approver(s) needed.",
			esc(approval.Label(choice)), esc(gateID), out.Waiting))
		return
	}
	x.unstash(channel, ts)
	if len(blocks) == 0 {
		// Original lost (restart while the modal was open): the workflow's
		// gate-decided event re-renders the full body later.
		blocks = []slack.Block{section(fmt.Sprintf("Gate `%s` of rollout `%s`", esc(gateID), esc(rolloutID)))}
	}
	if channel != "" && ts != "" {
		x.update(ctx, log, channel, ts, fmt.Sprintf("Gate %s decided: %s", gateID, choice), DecidedBlocks(blocks, rec))
	}
	x.respond(ctx, responseURL, fmt.Sprintf(":white_check_mark: Recorded: *%s* on gate `%s` of rollout `%s`.",
		esc(approval.Label(choice)), esc(gateID), esc(rolloutID)))
}

// mapped reports whether user has an identity in Config.Users.
func (x *Interactions) mapped(user string) bool {
	if x.dir == nil {
		return false
	}
	_, ok := x.dir.Lookup(user)
	return ok
}

// refuseUnmapped answers a click by a Slack user without a configured
// identity. Such a click never counts, and nothing is sent to Temporal: the
// worker signs decisions only for users it can name.
func (x *Interactions) refuseUnmapped(ctx context.Context, rolloutID, gateID, choice, user, responseURL string) {
	x.log.WarnContext(ctx, "slack: click by an unmapped Slack user refused; add the user to slack.users to let them decide",
		"rollout", rolloutID, "gate", gateID, "choice", choice, "user", user)
	x.respond(ctx, responseURL, fmt.Sprintf(":no_entry: Your choice *%s* on gate `%s` of rollout `%s` was not sent: "+
		"your Slack user %s is not mapped to an fkrollout identity; ask the worker's operator to add it to slack.users.",
		esc(approval.Label(choice)), esc(gateID), esc(rolloutID), esc(user)))
}

func (x *Interactions) update(ctx context.Context, log *slog.Logger, channel, ts, fallback string, blocks []slack.Block) {
	err := retryCall(ctx, x.retry, x.log, "chat.update", func(ctx context.Context) error {
		_, _, _, err := x.api.UpdateMessageContext(ctx, channel, ts,
			slack.MsgOptionText(esc(fallback), false), slack.MsgOptionBlocks(blocks...))
		return err
	})
	if err != nil {
		log.ErrorContext(ctx, "slack: update gate message", "err", err)
	}
}

// respond sends an ephemeral message to the clicker through response_url.
func (x *Interactions) respond(ctx context.Context, responseURL, text string) {
	if responseURL == "" {
		return
	}
	err := retryCall(ctx, x.retry, x.log, "response_url", func(ctx context.Context) error {
		_, _, err := x.api.PostMessageContext(ctx, "",
			slack.MsgOptionResponseURL(responseURL, slack.ResponseTypeEphemeral),
			slack.MsgOptionText(text, false))
		return err
	})
	if err != nil {
		x.log.ErrorContext(ctx, "slack: respond via response_url", "err", err)
	}
}

// HandleSlash answers "/fkrollout status <id>" (and help).
func (x *Interactions) HandleSlash(cmd slack.SlashCommand) any {
	fields := strings.Fields(cmd.Text)
	usage := SlashAck{ResponseType: slack.ResponseTypeEphemeral,
		Text: "Usage: `" + esc(cmp.Or(cmd.Command, "/fkrollout")) + " status &lt;rollout-id&gt;`"}
	if len(fields) != 2 || fields[0] != "status" {
		return usage
	}
	id := fields[1]
	if x.dec == nil {
		return SlashAck{ResponseType: slack.ResponseTypeEphemeral, Text: "Status is not available from this worker; use the CLI."}
	}
	responseURL := cmd.ResponseURL
	x.async("status", func(ctx context.Context) {
		summary, err := x.dec.Status(ctx, id)
		if err != nil {
			x.respond(ctx, responseURL, fmt.Sprintf(":warning: Status of rollout `%s` unavailable: %s", esc(id), esc(err.Error())))
			return
		}
		x.respond(ctx, responseURL, summary)
	})
	return SlashAck{ResponseType: slack.ResponseTypeEphemeral, Text: "Looking up rollout `" + esc(id) + "`…"}
}

func (x *Interactions) stash(channel, ts string, blocks []slack.Block) {
	if channel == "" || ts == "" || len(blocks) == 0 {
		return
	}
	now := x.now()
	x.mu.Lock()
	defer x.mu.Unlock()
	for k, p := range x.pending {
		if now.After(p.expires) {
			delete(x.pending, k)
		}
	}
	// response_url and the modal are good for 30 minutes; so is the stash.
	x.pending[channel+"/"+ts] = pendingGate{blocks: blocks, expires: now.Add(30 * time.Minute)}
}

func (x *Interactions) peek(channel, ts string) []slack.Block {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.pending[channel+"/"+ts].blocks
}

func (x *Interactions) unstash(channel, ts string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.pending, channel+"/"+ts)
}

// RetryPolicy bounds how long a Slack call answering an interaction may keep
// retrying. Only interactions retry in process: nothing retries a button
// click's follow-up for them, whereas notifications are activities that
// Temporal retries (activityError). Slack's
// Retry-After is honoured; a Retry-After longer than MaxWait is returned to the
// caller at once (as an error wrapping *slack.RateLimitedError), because
// waiting minutes inside a rollout step helps no one.
type RetryPolicy struct {
	MaxAttempts int           // total attempts, including the first
	MaxWait     time.Duration // longest single wait we accept
	Backoff     time.Duration // base wait for 5xx and network errors
}

// DefaultRetryPolicy suits an interaction's follow-up calls.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 4, MaxWait: 30 * time.Second, Backoff: 500 * time.Millisecond}
}

func retryCall(ctx context.Context, p RetryPolicy, log *slog.Logger, op string, fn func(context.Context) error) error {
	if p.MaxAttempts < 1 {
		p.MaxAttempts = 1
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		wait, ok := retryWait(err, attempt, p)
		if !ok || attempt >= p.MaxAttempts {
			return err
		}
		if p.MaxWait > 0 && wait > p.MaxWait {
			return fmt.Errorf("%s: retry-after %s exceeds limit %s: %w", op, wait, p.MaxWait, err)
		}
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
			return fmt.Errorf("%s: retry in %s would pass the deadline: %w", op, wait, err)
		}
		log.WarnContext(ctx, "slack call retrying", "op", op, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (last error: %v)", op, ctx.Err(), err)
		case <-t.C:
		}
	}
}

func retryWait(err error, attempt int, p RetryPolicy) (time.Duration, bool) {
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		if rl.RetryAfter <= 0 {
			return time.Second, true
		}
		return rl.RetryAfter, true
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		switch {
		case sc.Code == http.StatusTooManyRequests: // 429 without Retry-After
			return time.Second, true
		case sc.Code >= 500:
			return p.Backoff * time.Duration(1<<(attempt-1)), true
		}
		return 0, false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, false
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return p.Backoff * time.Duration(1<<(attempt-1)), true
	}
	return 0, false
}
