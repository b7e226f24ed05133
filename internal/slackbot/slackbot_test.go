package slackbot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
)

const (
	testSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	testChannel = "C0ROLLOUT"
	testOnCall  = "S0ONCALL"
)

// fakeDecider behaves like the workflow's gate Update as far as Slack can
// observe: the same update ID returns the first outcome (Temporal dedupes
// updates by ID), a second decision on a decided gate is refused, and a
// validator hook refuses what the policy forbids.
type fakeDecider struct {
	mu        sync.Mutex
	calls     []Decision
	outcomes  map[string]error   // update ID -> outcome
	results   map[string]Outcome // update ID -> accepted outcome
	decidedBy map[string]string
	validate  func(Decision) error
	approvals int            // distinct approvals a gate needs (default 1)
	votes     map[string]int // gate -> approvals so far
	release   chan struct{}  // when set, Decide blocks until closed
	status    map[string]string
}

func newFakeDecider() *fakeDecider {
	return &fakeDecider{outcomes: map[string]error{}, results: map[string]Outcome{}, decidedBy: map[string]string{},
		votes: map[string]int{}, status: map[string]string{}}
}

func (f *fakeDecider) Decide(ctx context.Context, rolloutID string, d Decision) (Outcome, error) {
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, d)
	if err, seen := f.outcomes[d.UpdateID]; seen {
		return f.results[d.UpdateID], err
	}
	var err error
	switch {
	case f.decidedBy[d.GateID] != "":
		err = Refused("gate " + d.GateID + " already decided")
	case f.validate != nil:
		err = f.validate(d)
	}
	var out Outcome
	if err == nil {
		f.votes[d.GateID]++
		need := max(f.approvals, 1)
		out = Outcome{Closed: f.votes[d.GateID] >= need, Waiting: max(need-f.votes[d.GateID], 0)}
		if out.Closed {
			f.decidedBy[d.GateID] = d.Actor
		}
	}
	f.outcomes[d.UpdateID], f.results[d.UpdateID] = err, out
	return out, err
}

func (f *fakeDecider) Status(ctx context.Context, rolloutID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.status[rolloutID]
	if !ok {
		return "", errors.New("workflow " + rolloutID + " not found")
	}
	return s, nil
}

func (f *fakeDecider) decisions() []Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Decision(nil), f.calls...)
}

type fixture struct {
	rec     *recorder
	dec     *fakeDecider
	bot     *Bot
	handler http.Handler
}

func testConfig(rec *recorder) Config {
	return Config{
		BotToken: "xoxb-test", SigningSecret: testSecret, Channel: testChannel, OnCallGroup: testOnCall,
		APIURL: rec.apiURL(),
		Users:  map[string]string{"U0ALICE": "alice@example.com", "U0BOB": "bob@example.com", "U0DAVE": "dave@example.com"},
	}
}

func newFixture(t *testing.T, mutate ...func(*Config)) *fixture {
	t.Helper()
	rec := newRecorder(t)
	cfg := testConfig(rec)
	for _, m := range mutate {
		m(&cfg)
	}
	dec := newFakeDecider()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bot, err := New(cfg, dec, log)
	require.NoError(t, err)
	t.Cleanup(func() { _ = bot.Interactions.Shutdown(context.Background()) })
	return &fixture{rec: rec, dec: dec, bot: bot, handler: bot.Handler()}
}

func promotionEvent(thread MessageRef) Event {
	return Event{
		RolloutID: "fkr-demo-1", Kind: KindGateOpened, Environment: "staging", Phase: "promotion",
		UILink: "http://localhost:8233/namespaces/default/workflows/fkr-demo-1", Thread: thread,
		Gate: &Gate{ID: "promotion-production", Kind: GatePromotion, Promotion: &PromotionData{
			From: "staging", To: "production",
			Validated: []string{"fk_workflow_instances_workspace", "fk_workflow_instances_config_version"},
			Tests: []TestResult{
				{Name: "insert with unknown workspace fails with 23503", Passed: true},
				{Name: "delete parent with children is restricted", Passed: true},
			},
			Perf: []PerfRow{
				{Operation: "Create workflow", BaselineMS: 10, WithFKsMS: 12, Acceptable: true},
				{Operation: "Bulk import (100)", BaselineMS: 500, WithFKsMS: 550, Acceptable: true},
			},
			Warnings: []string{"fk_approver_overrides_workflow_instance left NOT VALID (accepted debt)"},
		}},
	}
}

// postGate posts a started parent and a promotion gate, and returns the gate
// message as recorded (channel, ts, blocks JSON as Slack would echo it back).
func postGate(t *testing.T, f *fixture, ev Event) (PostResult, json.RawMessage) {
	t.Helper()
	ctx := context.Background()
	parent, err := f.bot.Notifier.Post(ctx, Event{RolloutID: ev.RolloutID, Kind: KindStarted,
		Start: &StartInfo{PlanSummary: "2 foreign keys", Constraints: 2, Environments: []string{"staging", "production"}, Requester: "carol@example.com"}})
	require.NoError(t, err)
	ev.Thread = parent.Ref()
	res, err := f.bot.Notifier.Post(ctx, ev)
	require.NoError(t, err)
	posts := f.rec.byMethod("chat.postMessage")
	require.Len(t, posts, 2)
	return res, json.RawMessage(posts[1].Form.Get("blocks"))
}

// click builds the block_actions payload Slack sends for a button of the
// recorded message.
func click(user string, msg PostResult, blocks json.RawMessage, btn *slack.ButtonBlockElement, responseURL string) map[string]any {
	return map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "username": strings.ToLower(user)},
		"api_app_id":   "A0APP",
		"trigger_id":   "1337.42.trigger",
		"response_url": responseURL,
		"container":    map[string]any{"type": "message", "message_ts": msg.TS, "channel_id": msg.Channel, "is_ephemeral": false},
		"channel":      map[string]any{"id": msg.Channel, "name": "rollouts"},
		"message":      map[string]any{"type": "message", "ts": msg.TS, "blocks": blocks},
		"actions": []map[string]any{{
			"type": "button", "action_id": btn.ActionID, "block_id": "fkr_actions:x", "value": btn.Value,
			"action_ts": "1700000001.000200", "text": map[string]any{"type": "plain_text", "text": btn.Text.Text},
		}},
	}
}

func serve(t *testing.T, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func waitResponse(t *testing.T, rec *recorder) call {
	t.Helper()
	select {
	case c := <-rec.responses:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no response_url message within 5s")
		return call{}
	}
}

func TestHandlerRejectsUnverifiedRequests(t *testing.T) {
	f := newFixture(t)
	msg := PostResult{Channel: testChannel, TS: "1700000000.000002"}
	blocks, _ := json.Marshal(GateBlocks(promotionEvent(MessageRef{})))
	btn := buttons(mustBlocks(t, blocks))[actionPrefix+approval.ChoiceApprove]
	require.NotNil(t, btn)
	body := interactionBody(t, click("U0BOB", msg, blocks, btn, f.rec.responseURL("sig")))
	now := time.Now()

	cases := []struct {
		name   string
		mutate func(r *http.Request)
		want   int
	}{
		{"valid", func(r *http.Request) {}, http.StatusOK},
		{"forged signature", func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("ab", 32))
		}, http.StatusUnauthorized},
		{"signature not v0", func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", strings.Replace(r.Header.Get("X-Slack-Signature"), "v0=", "v1=", 1))
		}, http.StatusUnauthorized},
		{"wrong secret", func(r *http.Request) {
			r.Header.Set("X-Slack-Signature", sign("not-the-secret", r.Header.Get("X-Slack-Request-Timestamp"), body))
		}, http.StatusUnauthorized},
		{"stale timestamp", func(r *http.Request) {
			*r = *signedRequest(testSecret, now.Add(-6*time.Minute), body)
		}, http.StatusUnauthorized},
		{"future timestamp", func(r *http.Request) {
			*r = *signedRequest(testSecret, now.Add(6*time.Minute), body)
		}, http.StatusUnauthorized},
		{"replayed body with a fresh timestamp", func(r *http.Request) {
			old := signedRequest(testSecret, now.Add(-10*time.Minute), body)
			r.Header.Set("X-Slack-Signature", old.Header.Get("X-Slack-Signature"))
		}, http.StatusUnauthorized},
		{"tampered body", func(r *http.Request) {
			other := strings.Replace(body, "U0BOB", "U0ALICE", 1)
			req := signedRequest(testSecret, now, body)
			*r = *httptest.NewRequest(http.MethodPost, "/slack", strings.NewReader(other))
			r.Header = req.Header
		}, http.StatusUnauthorized},
		{"missing signature", func(r *http.Request) { r.Header.Del("X-Slack-Signature") }, http.StatusUnauthorized},
		{"missing timestamp", func(r *http.Request) { r.Header.Del("X-Slack-Request-Timestamp") }, http.StatusUnauthorized},
		{"no headers", func(r *http.Request) { r.Header = http.Header{} }, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(f.dec.decisions())
			callsBefore := len(f.rec.all())
			req := signedRequest(testSecret, now, body)
			tc.mutate(req)
			w := serve(t, f.handler, req)
			assert.Equal(t, tc.want, w.Code, w.Body.String())
			f.bot.Interactions.Wait()
			if tc.want == http.StatusOK {
				assert.Len(t, f.dec.decisions(), before+1, "a verified click reaches the Decider")
				return
			}
			assert.Len(t, f.dec.decisions(), before, "an unverified request must not reach the Decider")
			assert.Len(t, f.rec.all(), callsBefore, "an unverified request must not call Slack either")
		})
	}
}

func mustBlocks(t *testing.T, raw []byte) slack.Blocks {
	t.Helper()
	var b slack.Blocks
	require.NoError(t, json.Unmarshal(raw, &b))
	return b
}

func TestApproveClickDecidesAndUpdatesMessage(t *testing.T) {
	f := newFixture(t)
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))

	// While open: the gate message is a thread reply with live buttons.
	gatePost := f.rec.byMethod("chat.postMessage")[1]
	assert.Equal(t, "1700000000.000001", gatePost.Form.Get("thread_ts"), "gate is a reply in the rollout thread")
	open := mustBlocks(t, raw)
	btns := buttons(open)
	require.Contains(t, btns, actionPrefix+approval.ChoiceApprove)
	require.Contains(t, btns, actionPrefix+approval.ChoiceReject)
	body := text(t, open)
	for _, want := range []string{"fk_workflow_instances_workspace", "Behaviour tests: 2/2 passed", "Create workflow", "+2.0ms", "+50.0ms", "left NOT VALID", "Open in Temporal UI"} {
		assert.Contains(t, body, want)
	}

	w := serve(t, f.handler, signedRequest(testSecret, time.Now(),
		interactionBody(t, click("U0BOB", msg, raw, btns[actionPrefix+approval.ChoiceApprove], f.rec.responseURL("1")))))
	require.Equal(t, http.StatusOK, w.Code)
	resp := waitResponse(t, f.rec)
	f.bot.Interactions.Wait()

	ds := f.dec.decisions()
	require.Len(t, ds, 1)
	assert.Equal(t, Decision{DecisionInput: approval.DecisionInput{GateID: "promotion-production", Choice: approval.ChoiceApprove, Actor: "bob@example.com",
		SlackUser: "U0BOB", Via: "slack"}, UpdateID: UpdateID("promotion-production", "U0BOB", approval.ChoiceApprove)}, ds[0])

	updates := f.rec.byMethod("chat.update")
	require.Len(t, updates, 1)
	assert.Equal(t, msg.Channel, updates[0].Form.Get("channel"))
	assert.Equal(t, msg.TS, updates[0].Form.Get("ts"))
	decided := blocksOf(t, updates[0])
	assert.Empty(t, buttons(decided), "no live button after the decision")
	dt := text(t, decided)
	assert.Contains(t, dt, "Approved by <@U0BOB> at <!date^")
	assert.Contains(t, dt, "fk_workflow_instances_workspace", "the gate body stays readable")

	assert.Equal(t, "ephemeral", resp.JSON["response_type"])
	assert.Contains(t, resp.JSON["text"], "Recorded: *Approve*")
}

func TestRefusedClickGetsEphemeralReasonAndKeepsButtons(t *testing.T) {
	f := newFixture(t)
	f.dec.validate = func(d Decision) error {
		if d.Actor == "alice@example.com" {
			return Refused("four-eyes: alice@example.com requested this rollout and cannot approve it")
		}
		return nil
	}
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]

	w := serve(t, f.handler, signedRequest(testSecret, time.Now(),
		interactionBody(t, click("U0ALICE", msg, raw, approve, f.rec.responseURL("U0ALICE")))))
	require.Equal(t, http.StatusOK, w.Code)
	resp := waitResponse(t, f.rec)
	assert.Equal(t, "ephemeral", resp.JSON["response_type"])
	assert.Contains(t, resp.JSON["text"], "was refused")
	assert.Contains(t, resp.JSON["text"], "four-eyes")
	f.bot.Interactions.Wait()
	assert.Len(t, f.dec.decisions(), 1, "refusals are decided (and recorded) by the workflow")
	assert.Empty(t, f.rec.byMethod("chat.update"), "a refused click leaves the buttons live")
}

// TestUnmappedUserIsRefusedLocally: a Slack user missing from slack.users
// never acts as anyone. The click (and a reason-needing click, before any
// dialog opens) is answered with an explanation; nothing reaches the
// Decider, and the refusal is logged.
func TestUnmappedUserIsRefusedLocally(t *testing.T) {
	var logs syncBuffer
	f := newFixture(t, func(c *Config) { c.ApproverGroups = map[string]string{"S0DBA": "dba"} })
	f.bot.Interactions.log = slog.New(slog.NewJSONHandler(&logs, nil))
	f.rec.groups["S0DBA"] = []string{"U0MALLORY"} // group membership alone grants nothing
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	btns := buttons(mustBlocks(t, raw))

	for _, choice := range []string{approval.ChoiceApprove, approval.ChoiceReject} {
		w := serve(t, f.handler, signedRequest(testSecret, time.Now(),
			interactionBody(t, click("U0MALLORY", msg, raw, btns[actionPrefix+choice], f.rec.responseURL("m-"+choice)))))
		require.Equal(t, http.StatusOK, w.Code)
		resp := waitResponse(t, f.rec)
		assert.Equal(t, "ephemeral", resp.JSON["response_type"])
		assert.Contains(t, resp.JSON["text"], "your Slack user U0MALLORY is not mapped to an fkrollout identity; ask the worker's operator to add it to slack.users")
	}
	f.bot.Interactions.Wait()
	assert.Empty(t, f.dec.decisions(), "nothing is sent to Temporal for an unmapped user")
	assert.Empty(t, f.rec.byMethod("views.open"), "no reason dialog for a click that cannot count")
	assert.Empty(t, f.rec.byMethod("chat.update"))
	assert.Empty(t, f.rec.byMethod("usergroups.users.list"), "no group lookup for an unmapped user")
	assert.Contains(t, logs.String(), "unmapped Slack user refused")
	assert.Contains(t, logs.String(), `"user":"U0MALLORY"`)

	// A reason dialog opened before the user was removed from slack.users
	// is refused at submission too.
	meta, _ := json.Marshal(modalMeta{RolloutID: "fkr-demo-1", GateID: "promotion-production", Choice: approval.ChoiceReject,
		Channel: msg.Channel, TS: msg.TS, ResponseURL: f.rec.responseURL("m-modal")})
	w := serve(t, f.handler, signedRequest(testSecret, time.Now(), interactionBody(t, map[string]any{
		"type": "view_submission", "user": map[string]any{"id": "U0MALLORY"},
		"view": map[string]any{"id": "V1", "type": "modal", "callback_id": reasonCallbackID, "private_metadata": string(meta),
			"state": map[string]any{"values": map[string]any{reasonBlockID: map[string]any{
				reasonActionID: map[string]any{"type": "plain_text_input", "value": "no"}}}}},
	})))
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, waitResponse(t, f.rec).JSON["text"], "is not mapped to an fkrollout identity")
	f.bot.Interactions.Wait()
	assert.Empty(t, f.dec.decisions())
}

func TestDoubleClickUsesTheSameUpdateID(t *testing.T) {
	f := newFixture(t)
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	btns := buttons(mustBlocks(t, raw))
	// A triple click: three deliveries (each its own signed request) of the
	// same user's same choice. A replayed delivery is refused by the handler
	// (TestHandlerRefusesReplays); these are distinct requests.
	for i := 0; i < 3; i++ {
		body := interactionBody(t, click("U0BOB", msg, raw, btns[actionPrefix+approval.ChoiceApprove], f.rec.responseURL(fmt.Sprintf("d%d", i))))
		require.Equal(t, http.StatusOK, serve(t, f.handler, signedRequest(testSecret, time.Now(), body)).Code)
	}
	f.bot.Interactions.Wait()
	ds := f.dec.decisions()
	require.Len(t, ds, 3)
	for _, d := range ds {
		assert.Equal(t, ds[0].UpdateID, d.UpdateID)
	}
	for i := 0; i < 3; i++ {
		resp := waitResponse(t, f.rec)
		assert.Contains(t, resp.JSON["text"], "Recorded", "every click of the same update sees the same accepted outcome")
	}

	// Another user's click on the now decided gate is a different update and is refused.
	other := interactionBody(t, click("U0ALICE", msg, raw, btns[actionPrefix+approval.ChoiceApprove], f.rec.responseURL("o")))
	require.Equal(t, http.StatusOK, serve(t, f.handler, signedRequest(testSecret, time.Now(), other)).Code)
	resp := waitResponse(t, f.rec)
	assert.Contains(t, resp.JSON["text"], "already decided")
	f.bot.Interactions.Wait()
	assert.NotEqual(t, ds[0].UpdateID, f.dec.decisions()[3].UpdateID)

	assert.NotEqual(t, UpdateID("g", "U1", "approve"), UpdateID("g", "U1", "reject"))
	assert.NotEqual(t, UpdateID("g", "U1", "approve"), UpdateID("g2", "U1", "approve"))
}

func TestRejectOpensReasonModalThenDecides(t *testing.T) {
	f := newFixture(t)
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	reject := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceReject]
	require.NotNil(t, reject)

	w := serve(t, f.handler, signedRequest(testSecret, time.Now(),
		interactionBody(t, click("U0BOB", msg, raw, reject, f.rec.responseURL("r")))))
	require.Equal(t, http.StatusOK, w.Code)
	f.bot.Interactions.Wait()
	assert.Empty(t, f.dec.decisions(), "reject waits for the reason")
	opens := f.rec.byMethod("views.open")
	require.Len(t, opens, 1)
	assert.Equal(t, "1337.42.trigger", opens[0].JSON["trigger_id"])
	view := opens[0].JSON["view"].(map[string]any)
	assert.Equal(t, reasonCallbackID, view["callback_id"])
	meta := view["private_metadata"].(string)

	submit := func(reason string) *httptest.ResponseRecorder {
		payload := map[string]any{
			"type": "view_submission",
			"user": map[string]any{"id": "U0BOB"},
			"view": map[string]any{
				"id": "V1", "type": "modal", "callback_id": reasonCallbackID, "private_metadata": meta,
				"state": map[string]any{"values": map[string]any{reasonBlockID: map[string]any{
					reasonActionID: map[string]any{"type": "plain_text_input", "value": reason}}}},
			},
		}
		return serve(t, f.handler, signedRequest(testSecret, time.Now(), interactionBody(t, payload)))
	}

	// A blank reason keeps the modal open with an error, and decides nothing.
	w = submit("   ")
	require.Equal(t, http.StatusOK, w.Code)
	var ack map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ack))
	assert.Equal(t, "errors", ack["response_action"])
	f.bot.Interactions.Wait()
	assert.Empty(t, f.dec.decisions())

	w = submit("perf overhead on bulk import is too high")
	require.Equal(t, http.StatusOK, w.Code)
	assert.Empty(t, strings.TrimSpace(w.Body.String()), "empty ack closes the modal")
	resp := waitResponse(t, f.rec)
	f.bot.Interactions.Wait()

	ds := f.dec.decisions()
	require.Len(t, ds, 1)
	assert.Equal(t, approval.ChoiceReject, ds[0].Choice)
	assert.Equal(t, "perf overhead on bulk import is too high", ds[0].Reason)
	assert.Equal(t, UpdateID("promotion-production", "U0BOB", approval.ChoiceReject), ds[0].UpdateID)

	updates := f.rec.byMethod("chat.update")
	require.Len(t, updates, 1)
	decided := blocksOf(t, updates[0])
	assert.Empty(t, buttons(decided))
	dt := text(t, decided)
	assert.Contains(t, dt, "Rejected by <@U0BOB> at ")
	assert.Contains(t, dt, "perf overhead on bulk import is too high")
	assert.Contains(t, dt, "Behaviour tests", "the original body was kept across the modal")
	assert.Contains(t, resp.JSON["text"], "Recorded: *Reject*")
}

func TestTwoApproverGateKeepsButtonsAfterFirstVote(t *testing.T) {
	f := newFixture(t)
	f.dec.approvals = 2
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]

	serve(t, f.handler, signedRequest(testSecret, time.Now(), interactionBody(t, click("U0BOB", msg, raw, approve, f.rec.responseURL("v1")))))
	resp := waitResponse(t, f.rec)
	f.bot.Interactions.Wait()
	assert.Contains(t, resp.JSON["text"], "1 more approver(s) needed")
	updates := f.rec.byMethod("chat.update")
	require.Len(t, updates, 1)
	voted := blocksOf(t, updates[0])
	assert.Contains(t, buttons(voted), actionPrefix+approval.ChoiceApprove, "the second approver still has a button")
	assert.Contains(t, text(t, voted), "Approved by <@U0BOB>")
	assert.Contains(t, text(t, voted), "1 more approver(s) needed")

	// The second approver clicks on the message as it now is.
	raw2 := []byte(updates[0].Form.Get("blocks"))
	serve(t, f.handler, signedRequest(testSecret, time.Now(), interactionBody(t, click("U0DAVE", msg, raw2, approve, f.rec.responseURL("v2")))))
	resp = waitResponse(t, f.rec)
	f.bot.Interactions.Wait()
	assert.Contains(t, resp.JSON["text"], "Recorded")
	updates = f.rec.byMethod("chat.update")
	require.Len(t, updates, 2)
	final := blocksOf(t, updates[1])
	assert.Empty(t, buttons(final))
	ft := text(t, final)
	assert.Contains(t, ft, "Approved by <@U0BOB>", "the first vote stays visible")
	assert.Contains(t, ft, "Approved by <@U0DAVE>")
}

func TestAckDoesNotWaitForTheDecision(t *testing.T) {
	f := newFixture(t)
	f.dec.release = make(chan struct{})
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]

	start := time.Now()
	w := serve(t, f.handler, signedRequest(testSecret, time.Now(),
		interactionBody(t, click("U0BOB", msg, raw, approve, f.rec.responseURL("a")))))
	elapsed := time.Since(start)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Less(t, elapsed, time.Second, "Slack needs the ack within 3 s, even while the Update is slow")
	assert.Empty(t, f.dec.decisions(), "the decision is still in flight")
	close(f.dec.release)
	waitResponse(t, f.rec)
	f.bot.Interactions.Wait()
	assert.Len(t, f.dec.decisions(), 1)
}

func TestRemediationGateBlocks(t *testing.T) {
	ev := Event{RolloutID: "fkr-2", Kind: KindGateOpened, Environment: "staging",
		Gate: &Gate{ID: "remediation-staging-1", Kind: GateRemediation, Remediation: &RemediationData{FKs: []OrphanReport{
			{Constraint: "fk_wi_workspace", Table: "public.workflow_instances", Columns: []string{"workspace_id"},
				RefTable: "public.workspaces", Orphans: 3, Samples: []string{"ws-9", "ws-10", "<!channel>"}, Nullable: false,
				Export:     "/var/backups/fkr-2/staging/orphans/round-2/fk_wi_workspace.csv (3 rows)",
				Dependents: []ImpactRow{{Table: "public.workflow_stages", Constraint: "fk_stages_wi", Action: "NO ACTION", Rows: 7, Depth: 1}},
				Triggers:   []string{"audit_wi on public.workflow_instances (AFTER DELETE ROW)"},
				Impossible: map[string]string{approval.ChoiceDelete: "7 rows of public.workflow_stages reference the orphans", approval.ChoiceSetNull: "workspace_id is NOT NULL"}},
			{Constraint: "fk_sub_wi", Table: "public.atp_submissions", Columns: []string{"workflow_instance_id"},
				RefTable: "public.workflow_instances", Orphans: 12, Nullable: true},
		}}}}
	raw, err := json.Marshal(GateBlocks(ev))
	require.NoError(t, err)
	b := mustBlocks(t, raw)
	body := text(t, b)
	assert.Contains(t, body, "15 orphan rows")
	assert.Contains(t, body, "*fk_wi_workspace*")
	assert.Contains(t, body, "*3* orphans")
	assert.Contains(t, body, "`ws-9`")
	assert.Contains(t, body, "full list on the worker: `/var/backups/fkr-2/staging/orphans/round-2/fk_wi_workspace.csv (3 rows)`", "the gate links the full export")
	assert.Contains(t, body, "&lt;!channel&gt;", "data from the database cannot ping the channel")
	assert.NotContains(t, body, "<!channel>")
	assert.Contains(t, body, "↳ `public.workflow_stages` via `fk_stages_wi` (NO ACTION): *7* rows", "the remediation impact")
	assert.Contains(t, body, "triggers: `audit_wi on public.workflow_instances (AFTER DELETE ROW)`")
	assert.Contains(t, body, "✗ delete: 7 rows of public.workflow_stages reference the orphans")
	assert.Contains(t, body, "✗ set-null: workspace_id is NOT NULL")

	btns := buttons(b)
	for _, c := range []struct {
		choice  string
		confirm bool
	}{{approval.ChoiceDelete, true}, {approval.ChoiceSetNull, true}, {approval.ChoiceAcceptDebt, true}, {approval.ChoiceReAudit, false}, {approval.ChoiceAbort, true}} {
		btn, ok := btns[actionPrefix+c.choice]
		require.True(t, ok, "button %s", c.choice)
		assert.Equal(t, c.confirm, btn.Confirm != nil, "confirmation on %s", c.choice)
		v, err := decodeValue(btn.Value)
		require.NoError(t, err)
		assert.Equal(t, actionValue{RolloutID: "fkr-2", GateID: "remediation-staging-1", Choice: c.choice,
			Label: btn.Text.Text, NeedsReason: c.choice == approval.ChoiceAbort || c.choice == approval.ChoiceAcceptDebt}, v)
	}

	decided := DecidedBlocks(b.BlockSet, GateDecision{Actor: "bob@example.com", Choice: approval.ChoiceSetNull, Via: "cli",
		Time: time.Date(2026, 11, 22, 21, 30, 0, 0, time.UTC)})
	dt := text(t, slack.Blocks{BlockSet: decided})
	assert.Contains(t, dt, "*Set NULL* chosen by bob@example.com at <!date^")
	assert.Contains(t, dt, "2026-11-22 21:30:00 UTC")
	assert.Contains(t, dt, "(via cli)")
	assert.Empty(t, buttons(slack.Blocks{BlockSet: decided}))
}

func TestInvestigateAndRollbackMessages(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	thread := MessageRef{Channel: testChannel, TS: "1700000000.000001"}
	figs := []Figure{{Name: "p95 latency increase", Value: 27.5, Threshold: 20, Unit: "ms"}}

	_, err := f.bot.Notifier.Post(ctx, Event{RolloutID: "fkr-3", Kind: KindGateOpened, Environment: "production", Thread: thread,
		Gate: &Gate{ID: "investigate-1", Kind: GateInvestigate, Investigate: &InvestigateData{
			Rule: "FK violation errors >1/hour", Figures: []Figure{{Name: "FK violations", Value: 4, Threshold: 1, Unit: "/h"}}}}})
	require.NoError(t, err)
	inv := f.rec.byMethod("chat.postMessage")[0]
	ib := blocksOf(t, inv)
	assert.Contains(t, text(t, ib), "FK violation errors &gt;1/hour")
	assert.Contains(t, text(t, ib), "FK violations: *4/h* (threshold 1/h)")
	assert.Contains(t, buttons(ib), actionPrefix+approval.ChoiceRollback)

	_, err = f.bot.Notifier.Post(ctx, Event{RolloutID: "fkr-3", Kind: KindRolledBack, Environment: "production", Thread: thread,
		Rollback: &RollbackInfo{Rule: "Performance degradation >20ms", Figures: figs, Constraints: []string{"fk_a", "fk_b"}}})
	require.NoError(t, err)
	rb := f.rec.byMethod("chat.postMessage")[1]
	assert.Equal(t, thread.TS, rb.Form.Get("thread_ts"))
	assert.Equal(t, "true", rb.Form.Get("reply_broadcast"), "a rollback is broadcast to the channel")
	rt := text(t, blocksOf(t, rb))
	assert.Contains(t, rt, "<!subteam^"+testOnCall+">")
	assert.Contains(t, rt, "Performance degradation &gt;20ms")
	assert.Contains(t, rt, "p95 latency increase: *27.5ms* (threshold 20ms)")
	assert.Contains(t, rt, "fk_a, fk_b")
}

func TestGateDecidedElsewhereRemovesButtons(t *testing.T) {
	f := newFixture(t)
	ev := promotionEvent(MessageRef{Channel: testChannel, TS: "1700000000.000001"})
	ev.Kind = KindGateDecided
	ev.Message = MessageRef{Channel: testChannel, TS: "1700000000.000002"}
	ev.Decision = &GateDecision{Actor: "bob@example.com", Choice: approval.ChoiceApprove, Via: "cli", Time: time.Now()}
	_, err := f.bot.Notifier.Post(context.Background(), ev)
	require.NoError(t, err)

	updates := f.rec.byMethod("chat.update")
	require.Len(t, updates, 1)
	assert.Equal(t, "1700000000.000002", updates[0].Form.Get("ts"))
	ub := blocksOf(t, updates[0])
	assert.Empty(t, buttons(ub))
	assert.Contains(t, text(t, ub), "Approved by bob@example.com at ")
	assert.Contains(t, text(t, ub), "(via cli)")
	posts := f.rec.byMethod("chat.postMessage")
	require.Len(t, posts, 1)
	assert.Equal(t, "1700000000.000001", posts[0].Form.Get("thread_ts"))
}

// The notifier makes one Slack call per Post and leaves retrying to the
// Notify activity's retry policy, telling it how: after Slack's Retry-After
// for a rate limit, with backoff for a transient failure, never for a
// refusal.
func TestNotifierMakesOneCallAndSaysHowToRetry(t *testing.T) {
	ctx := context.Background()
	ev := Event{RolloutID: "fkr-4", Kind: KindPhase, Phase: "validate", Environment: "staging", Text: "validating 2 constraints"}
	for _, tc := range []struct {
		name      string
		fail      failure
		wantType  string
		wantDelay time.Duration
		retryable bool
	}{
		{"429 with Retry-After", failure{status: http.StatusTooManyRequests, retryAfter: "7"}, ErrTypeRateLimited, 7 * time.Second, true},
		{"5xx", failure{status: http.StatusServiceUnavailable}, ErrTypeUnavailable, 0, true},
		{"transient API error", failure{apiError: "internal_error"}, ErrTypeUnavailable, 0, true},
		{"revoked token", failure{apiError: "invalid_auth"}, ErrTypeRefused, 0, false},
		{"channel gone", failure{apiError: "channel_not_found"}, ErrTypeRefused, 0, false},
		{"other 4xx", failure{status: http.StatusNotFound}, ErrTypeRefused, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.rec.failNext("chat.postMessage", tc.fail)
			start := time.Now()
			_, err := f.bot.Notifier.Post(ctx, ev)
			require.Error(t, err)
			assert.Less(t, time.Since(start), time.Second, "no waiting inside the call")
			assert.Len(t, f.rec.byMethod("chat.postMessage"), 1, "one call per attempt")

			ae, ok := errors.AsType[*temporal.ApplicationError](err)
			require.True(t, ok, "an application error: %v", err)
			assert.Equal(t, tc.wantType, ae.Type())
			assert.Equal(t, tc.wantDelay, ae.NextRetryDelay())
			assert.Equal(t, !tc.retryable, ae.NonRetryable())
			if tc.wantType == ErrTypeRateLimited {
				_, isRL := errors.AsType[*slack.RateLimitedError](err)
				assert.True(t, isRL, "the cause is still Slack's: %v", err)
			}

			// The next attempt is one more call.
			res, err := f.bot.Notifier.Post(ctx, ev)
			require.NoError(t, err)
			assert.NotEmpty(t, res.TS)
			assert.Len(t, f.rec.byMethod("chat.postMessage"), 2)
		})
	}
	t.Run("a bad event is refused before any call", func(t *testing.T) {
		f := newFixture(t)
		_, err := f.bot.Notifier.Post(ctx, Event{RolloutID: "x", Kind: "bogus"})
		require.ErrorContains(t, err, "unknown event kind")
		assert.Empty(t, f.rec.byMethod("chat.postMessage"))
	})
}

func TestStartedParentAndThreadReplies(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	parent, err := f.bot.Notifier.Post(ctx, Event{RolloutID: "fkr-5", Kind: KindStarted,
		UILink: "http://localhost:8233/namespaces/default/workflows/fkr-5",
		Start:  &StartInfo{PlanSummary: "45 foreign keys from add_master_tables_final_v2", Constraints: 45, Environments: []string{"staging", "production"}, Requester: "carol@example.com"}})
	require.NoError(t, err)
	assert.Equal(t, PostResult{Channel: testChannel, TS: "1700000000.000001"}, parent)

	_, err = f.bot.Notifier.Post(ctx, Event{RolloutID: "fkr-5", Kind: KindPhase, Thread: parent.Ref(), Environment: "staging", Phase: "audit", Text: "auditing 45 foreign keys"})
	require.NoError(t, err)

	posts := f.rec.byMethod("chat.postMessage")
	require.Len(t, posts, 2)
	assert.Equal(t, testChannel, posts[0].Form.Get("channel"))
	assert.Empty(t, posts[0].Form.Get("thread_ts"), "the parent starts the thread")
	pt := text(t, blocksOf(t, posts[0]))
	for _, want := range []string{"FK rollout fkr-5", "45 foreign keys", "carol@example.com", "staging → production", "<http://localhost:8233/namespaces/default/workflows/fkr-5|Open in Temporal UI>"} {
		assert.Contains(t, pt, want)
	}
	assert.Equal(t, parent.TS, posts[1].Form.Get("thread_ts"))
	assert.Contains(t, text(t, blocksOf(t, posts[1])), "auditing 45 foreign keys")
}

func TestSlashStatus(t *testing.T) {
	f := newFixture(t)
	f.dec.status["fkr-6"] = "*fkr-6*: staging · validate · 3/5 constraints validated"
	slash := func(text, responseID string) *httptest.ResponseRecorder {
		body := "command=%2Ffkrollout&text=" + strings.ReplaceAll(text, " ", "+") +
			"&user_id=U0BOB&channel_id=" + testChannel + "&response_url=" + f.rec.responseURL(responseID)
		return serve(t, f.handler, signedRequest(testSecret, time.Now(), body))
	}

	w := slash("status fkr-6", "s1")
	require.Equal(t, http.StatusOK, w.Code)
	var ack SlashAck
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ack))
	assert.Equal(t, "ephemeral", ack.ResponseType)
	resp := waitResponse(t, f.rec)
	assert.Equal(t, "*fkr-6*: staging · validate · 3/5 constraints validated", resp.JSON["text"])

	w = slash("status nope", "s2")
	require.Equal(t, http.StatusOK, w.Code)
	resp = waitResponse(t, f.rec)
	assert.Contains(t, resp.JSON["text"], "workflow nope not found")

	w = slash("approve fkr-6", "s3")
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &ack))
	assert.Contains(t, ack.Text, "Usage: `/fkrollout status &lt;rollout-id&gt;`")

	// Slash commands are verified like everything else.
	req := signedRequest("wrong", time.Now(), "command=%2Ffkrollout&text=status+fkr-6")
	assert.Equal(t, http.StatusUnauthorized, serve(t, f.handler, req).Code)
}

func TestDirectoryMapsUsersAndCachesGroups(t *testing.T) {
	rec := newRecorder(t)
	rec.groups["S0DBA"] = []string{"U0DAVE", "U0BOB"}
	rec.groups["S0SRE"] = []string{"U0ERIN"}
	cfg := testConfig(rec)
	cfg.ApproverGroups = map[string]string{"S0DBA": "dba", "S0SRE": "sre"}
	api := NewClient(cfg)
	dir, err := NewDirectory(api, cfg, nil)
	require.NoError(t, err)
	now := time.Date(2026, 11, 22, 21, 0, 0, 0, time.UTC)
	dir.now = func() time.Time { return now }
	ctx := context.Background()

	resolve := func(user string) Approver {
		a, ok := dir.Resolve(ctx, user)
		require.True(t, ok, user)
		return a
	}
	assert.Equal(t, Approver{Identity: "bob@example.com", Roles: []string{"dba"}, SlackUser: "U0BOB"}, resolve("U0BOB"))
	assert.Equal(t, Approver{Identity: "dave@example.com", Roles: []string{"dba"}, SlackUser: "U0DAVE"}, resolve("U0DAVE"))
	assert.Equal(t, Approver{Identity: "alice@example.com", SlackUser: "U0ALICE"}, resolve("U0ALICE"))
	assert.Len(t, rec.byMethod("usergroups.users.list"), 2, "one call per group while cached")

	// Erin is in a group but not in slack.users: no identity, no roles.
	a, ok := dir.Resolve(ctx, "U0ERIN")
	assert.False(t, ok)
	assert.Equal(t, Approver{SlackUser: "U0ERIN"}, a)
	_, ok = dir.Lookup("U0ERIN")
	assert.False(t, ok)

	rec.mu.Lock()
	rec.groups["S0DBA"] = []string{"U0DAVE"} // Bob left the DBA group
	rec.mu.Unlock()
	now = now.Add(6 * time.Minute)
	assert.Empty(t, resolve("U0BOB").Roles, "membership refreshed after the TTL")
	assert.Len(t, rec.byMethod("usergroups.users.list"), 4)

	// Slack down after the TTL: the stale membership is used rather than none.
	now = now.Add(6 * time.Minute)
	for i := 0; i < 3; i++ {
		rec.failNext("usergroups.users.list", failure{status: http.StatusInternalServerError})
	}
	assert.Equal(t, []string{"dba"}, resolve("U0DAVE").Roles)
}

func TestClickCarriesGroupRoles(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ApproverGroups = map[string]string{"S0DBA": "dba"} })
	f.rec.groups["S0DBA"] = []string{"U0DAVE"}
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]
	serve(t, f.handler, signedRequest(testSecret, time.Now(), interactionBody(t, click("U0DAVE", msg, raw, approve, f.rec.responseURL("g")))))
	waitResponse(t, f.rec)
	f.bot.Interactions.Wait()
	ds := f.dec.decisions()
	require.Len(t, ds, 1)
	assert.Equal(t, "dave@example.com", ds[0].Actor)
	assert.Equal(t, []string{"dba"}, ds[0].Roles)
}

func TestConfig(t *testing.T) {
	var empty Config
	assert.False(t, empty.Enabled())
	assert.NoError(t, empty.Validate())
	assert.Contains(t, empty.Describe(), "decide gates from the CLI or the Temporal UI")
	_, err := New(empty, nil, nil)
	assert.ErrorIs(t, err, ErrDisabled)

	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"valid http", Config{BotToken: "xoxb-1", Channel: "C1", SigningSecret: "s"}, ""},
		{"valid socket", Config{BotToken: "xoxb-1", Channel: "C1", SocketMode: true, AppToken: "xapp-1"}, ""},
		{"token without channel", Config{BotToken: "xoxb-1"}, "both bot_token and channel"},
		{"user token", Config{BotToken: "xoxp-1", Channel: "C1", SigningSecret: "s"}, "bot token"},
		{"http without secret", Config{BotToken: "xoxb-1", Channel: "C1"}, "signing_secret is required"},
		{"socket without app token", Config{BotToken: "xoxb-1", Channel: "C1", SocketMode: true}, "app_token"},
		{"bad ttl", Config{BotToken: "xoxb-1", Channel: "C1", SigningSecret: "s", GroupCacheTTL: "soon"}, "group_cache_ttl"},
		{"api url", Config{BotToken: "xoxb-1", Channel: "C1", SigningSecret: "s", APIURL: "http://x/api"}, "must end with /"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tc.want)
		})
	}

	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("start", "slack", Config{BotToken: "xoxb-secret-token", SigningSecret: "shh", Channel: "C1"})
	assert.NotContains(t, sb.String(), "xoxb-secret-token")
	assert.NotContains(t, sb.String(), "shh")
	assert.Contains(t, sb.String(), "[redacted]")
}

func TestCompletionReportPostedInThreadAsMarkdown(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	thread := MessageRef{Channel: testChannel, TS: "1700000000.000001"}
	// A report larger than one message: Slack gets it in order, in parts,
	// each a markdown block, every line intact.
	var b strings.Builder
	b.WriteString("# ✅ FK Rollout demo — COMPLETED\n\n| Metric | Target | Actual | Status |\n|---|---|---|---|\n")
	for i := 0; b.Len() < 2*maxMarkdownBlock+100; i++ {
		fmt.Fprintf(&b, "| FK Constraints Validated %d | 19 | 19 | ✅ PASS |\n", i)
	}
	report := b.String()
	res, err := f.bot.Notifier.Post(ctx, Event{RolloutID: "fkr-9", Kind: KindReport, Thread: thread, Report: report})
	require.NoError(t, err)

	posts := f.rec.byMethod("chat.postMessage")
	require.Len(t, posts, 3)
	assert.Equal(t, posts[0].TS, res.TS, "the first part's ref is returned")
	var joined strings.Builder
	for i, p := range posts {
		assert.Equal(t, thread.TS, p.Form.Get("thread_ts"), "part %d in the rollout thread", i)
		assert.Contains(t, p.Form.Get("text"), fmt.Sprintf("Completion report of rollout fkr-9 (%d/3)", i+1))
		var blocks []map[string]any
		require.NoError(t, json.Unmarshal([]byte(p.Form.Get("blocks")), &blocks))
		require.Len(t, blocks, 1)
		assert.Equal(t, "markdown", blocks[0]["type"])
		part := blocks[0]["text"].(string)
		assert.LessOrEqual(t, len(part), maxMarkdownBlock)
		assert.True(t, strings.HasSuffix(part, "\n"), "parts end at a line boundary")
		joined.WriteString(part)
	}
	assert.Equal(t, report, joined.String())

	_, err = f.bot.Notifier.Post(ctx, Event{RolloutID: "fkr-9", Kind: KindReport, Thread: thread})
	assert.ErrorContains(t, err, "report event without report")
}

func TestReportChunks(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"fits", "a\nb\n", 10, []string{"a\nb\n"}},
		{"splits at lines", "aaa\nbbb\nccc\n", 8, []string{"aaa\nbbb\n", "ccc\n"}},
		{"cuts a long line", "abcdefghij\nk\n", 4, []string{"abcd", "efgh", "ij\n", "k\n"}},
		{"empty", "", 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ReportChunks(tc.in, tc.limit))
		})
	}
}

// The gate message carries the workflow's gate block (the same text the
// CLI's status prints) as a code block, escaped, and drops it once decided.
func TestGateMessageShowsHowToDecide(t *testing.T) {
	block := "Gate staging/remediation/1: 1 constraint(s) in staging have orphans\nVotes: none yet (1 needed to proceed) · Deadline: none (waits)\n" +
		"CLI: fkrollout decide r1 staging/remediation/1 delete --reason \"…\" <!channel>"
	ev := Event{RolloutID: "r1", Kind: KindGateOpened, Environment: "staging",
		Gate: &Gate{ID: "staging/remediation/1", Kind: GateRemediation, Block: block, Remediation: &RemediationData{FKs: []OrphanReport{{Constraint: "fk", Orphans: 1}}}}}
	raw, err := json.Marshal(GateBlocks(ev))
	require.NoError(t, err)
	b := mustBlocks(t, raw)
	body := text(t, b)
	assert.Contains(t, body, "```Gate staging/remediation/1: 1 constraint(s) in staging have orphans")
	assert.Contains(t, body, "CLI: fkrollout decide r1 staging/remediation/1 delete")
	assert.NotContains(t, body, "<!channel>")
	decided := DecidedBlocks(b.BlockSet, GateDecision{Actor: "alice", Choice: approval.ChoiceDelete, Time: time.Now()})
	assert.NotContains(t, text(t, slack.Blocks{BlockSet: decided}), "CLI: fkrollout decide", "how to decide goes with the buttons")
}
