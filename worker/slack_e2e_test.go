package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/internal/testkit/slacktest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// clickBody is the form body of a block_actions interaction: user clicks
// button btn of the posted gate message (channel, ts, blocks as posted).
func clickBody(t *testing.T, user, channel, ts string, blocks json.RawMessage, btn *slack.ButtonBlockElement, responseURL string) string {
	t.Helper()
	return slacktest.InteractionBody(t, map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "username": strings.ToLower(user)},
		"api_app_id":   "A0FKROLLOUT",
		"trigger_id":   "1337.42.trigger",
		"response_url": responseURL,
		"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"channel":      map[string]any{"id": channel, "name": "rollouts"},
		"message":      map[string]any{"type": "message", "ts": ts, "blocks": blocks},
		"actions": []map[string]any{{
			"type": "button", "action_id": btn.ActionID, "block_id": "fkr_actions", "value": btn.Value,
			"action_ts": "1700000001.000200", "text": btn.Text,
		}},
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestE2ESlackApprovesPromotion runs the demo plan over staging and
// production on a real dev server and real databases, with the worker's
// Slack wiring (newNotifier, as main uses it) talking to a local Slack API.
// The promotion gate is decided by signed interaction requests on the
// worker's HTTP endpoint: forged and stale requests get 401 and decide
// nothing; an unauthorized user and the requester are refused (told so, and
// recorded in the rollout's status); an approver from the DBA user group is
// accepted, the rollout completes and the gate message loses its buttons.
func TestE2ESlackApprovesPromotion(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := devserver.Start(t, rollout.SearchAttributes())
	c := srv.Client()

	staging, production := pgtest.New(t), pgtest.New(t)
	seedDemo(t, staging, nil)
	seedDemo(t, production, nil)

	const (
		channel = "C0ROLLOUTS"
		mallory = "mallory@example.com"
	)
	groups := map[string][]string{"S0DBA": {"U0ALICE", "U0RITA"}}
	api := slacktest.NewRecorder(t, slacktest.Options{GroupMembers: func(group string) []string { return groups[group] }})
	addr := freeAddr(t)
	botToken, secret := "xoxb-e2e-"+randHex(8), "sign-"+randHex(12)
	// The requester signs the start with her key; Slack users prove who they
	// are through the worker's Slack handler, which signs their decisions.
	ritaPub, ritaKey, err := identity.GenerateKey()
	require.NoError(t, err)
	cfgFile := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
slack:
  channel: %s
  listen_addr: %q
  api_url: %s
  on_call_group: S0ONCALL
  users:
    U0ALICE: %s
    U0RITA: %s
    U0MALLORY: %s
  approver_groups:
    S0DBA: dba
policy:
  allow_skip: [perf, monitor, window, full_backup]
  identities:
    %s: {}
    %s: {public_keys: [%q]}
    %s: {}
  environments:
    staging: {approvers: [%s]}
    production: {approvers: [%s, "role:dba"], requires: [staging]}
`, channel, addr, api.APIURL(), alice, rita, mallory, alice, rita, identity.FormatPublicKey(ritaPub), mallory, alice, alice)), 0o600))
	env := map[string]string{
		"FKROLLOUT_DSN_STAGING":          staging.DSN,
		"FKROLLOUT_DSN_PRODUCTION":       production.DSN,
		"FKROLLOUT_BACKUP_DIR":           t.TempDir(),
		"FKROLLOUT_REPORT_DIR":           t.TempDir(),
		"FKROLLOUT_SLACK_BOT_TOKEN":      botToken,
		"FKROLLOUT_SLACK_SIGNING_SECRET": secret,
	}
	cfg, err := config.LoadFrom(cfgFile, func(k string) (string, bool) {
		if k == "\x00names" {
			return "FKROLLOUT_DSN_STAGING\nFKROLLOUT_DSN_PRODUCTION", true
		}
		v, ok := env[k]
		return v, ok
	})
	require.NoError(t, err)

	// The worker as main builds it: Slack notifier for the activities, the
	// interaction endpoint on listen_addr.
	var logBuf syncBuffer
	log := slog.New(slog.NewJSONHandler(&logBuf, nil))
	notifier, stopSlack, err := newNotifier(ctx, cfg, c, log)
	require.NoError(t, err)
	defer stopSlack()
	assert.Contains(t, logBuf.String(), "Slack on (HTTP interactions on "+addr+"), channel "+channel)
	assert.NotContains(t, logBuf.String(), secret)
	assert.NotContains(t, logBuf.String(), botToken)

	tq := startRolloutWorker(t, c, "slack-e2e", cfg, notifier, log)

	endpoint := "http://" + addr + "/slack/interactions"
	require.Eventually(t, func() bool {
		resp, err := http.Get(endpoint)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusMethodNotAllowed
	}, 10*time.Second, 50*time.Millisecond, "the worker's Slack endpoint listens on %s", addr)

	id := "slack-e2e-" + randHex(4)
	in := rollout.Input{
		Plan:         sqlassets.Migration,
		Requester:    rita,
		Environments: stagingThenProduction(),
		Skip:         skipAllBut(),
		Approval: approval.Policy{
			Default: approval.GateRule{Approvers: []string{alice}},
			Gates:   map[string]approval.GateRule{"promotion": {Approvers: []string{"role:dba"}}},
		},
	}
	proof := identity.Sign(ritaKey, rita, rollout.StartClaim(id, in), identity.NewNonce(), time.Now())
	in.RequesterProof = &proof
	run := startRollout(t, ctx, c, tq, id, in)

	// The promotion gate opens and its message is posted in the rollout's thread.
	var gate approval.Gate
	require.Eventually(t, func() bool {
		st := queryStatusT(t, ctx, c, id)
		require.False(t, st.State.Terminal(), "rollout ended before the promotion gate: %s", st.Summary())
		for _, g := range st.OpenGates {
			if g.Kind == notify.GatePromotion && !g.Message.IsZero() {
				gate = g
				return true
			}
		}
		return false
	}, 90*time.Second, 200*time.Millisecond, "promotion gate opened and posted")

	posts := api.ByMethod("chat.postMessage")
	require.NotEmpty(t, posts)
	parent := posts[0]
	assert.Equal(t, channel, parent.Form.Get("channel"))
	assert.Empty(t, parent.Form.Get("thread_ts"), "the started post is the thread parent")
	assert.Contains(t, slacktest.Text(t, slacktest.Blocks(t, parent)), rita)
	var gatePost *slacktest.Call
	for i, p := range posts {
		if strings.Contains(p.Form.Get("blocks"), gate.ID) && len(slacktest.Buttons(slacktest.Blocks(t, p))) > 0 {
			gatePost = &posts[i]
		}
	}
	require.NotNil(t, gatePost, "gate message with buttons posted")
	// The promotion's approvers (the input narrowed them to role:dba) are
	// pinged through the dba group; a promotion is the planned path, so
	// on-call is not.
	assert.True(t, strings.HasPrefix(gatePost.Form.Get("text"), "<!subteam^S0DBA> your decision is needed "), gatePost.Form.Get("text"))
	assert.NotContains(t, gatePost.Form.Get("text"), "S0ONCALL")
	gateBlocks := json.RawMessage(gatePost.Form.Get("blocks"))
	assert.Equal(t, gate.Message.Channel, gatePost.Form.Get("channel"))
	require.NotEmpty(t, parent.TS)
	assert.Equal(t, parent.TS, gatePost.Form.Get("thread_ts"), "gate message is a reply in the rollout's thread")
	assert.Equal(t, gatePost.TS, gate.Message.TS, "the workflow keeps the gate message's ref")
	approve := slacktest.Buttons(slacktest.Blocks(t, *gatePost))["fkrollout:"+approval.ChoiceApprove]
	require.NotNil(t, approve, "approve button")
	click := func(user, respID string) string {
		return clickBody(t, user, gate.Message.Channel, gate.Message.TS, gateBlocks, approve, api.ResponseURL(respID))
	}
	// response waits for the ephemeral answer posted to response URL id.
	response := func(id string) string {
		text, _ := api.AwaitResponse(t, id, 20*time.Second).JSON["text"].(string)
		return text
	}

	// Unverified requests: 401, nothing else happens.
	aliceClick := click("U0ALICE", "forged")
	for name, code := range map[string]int{
		"forged signature": slacktest.PostSigned(t, endpoint, "not-the-secret", time.Now(), aliceClick),
		"stale timestamp":  slacktest.PostSigned(t, endpoint, secret, time.Now().Add(-10*time.Minute), aliceClick),
	} {
		assert.Equal(t, http.StatusUnauthorized, code, name)
	}

	// Refused clicks: an unauthorized user, then the requester (four-eyes).
	require.Equal(t, http.StatusOK, slacktest.PostSigned(t, endpoint, secret, time.Now(), click("U0MALLORY", "mallory")))
	msg := response("mallory")
	assert.Contains(t, msg, "refused")
	assert.Contains(t, msg, mallory+" is not an allowed approver")
	require.Equal(t, http.StatusOK, slacktest.PostSigned(t, endpoint, secret, time.Now(), click("U0RITA", "rita")))
	msg = response("rita")
	assert.Contains(t, msg, "refused")
	assert.Contains(t, msg, "four-eyes")

	var st *rollout.Status
	require.Eventually(t, func() bool {
		st = queryStatusT(t, ctx, c, id)
		return len(st.Refusals) >= 2
	}, 10*time.Second, 100*time.Millisecond, "refusals recorded in the rollout")
	refusals := map[string]string{}
	for _, r := range st.Refusals {
		assert.Equal(t, gate.ID, r.GateID)
		assert.Equal(t, "slack:"+approval.ChoiceApprove, r.Signal)
		refusals[r.Actor] = r.Reason
	}
	assert.Contains(t, refusals[mallory], "not an allowed approver")
	assert.Contains(t, refusals[rita], "four-eyes")
	assert.Empty(t, st.Decisions, "no decision from forged, stale or refused clicks")
	assert.Equal(t, []string{gate.ID}, st.OpenGateIDs())
	assert.Empty(t, api.ResponsesTo("forged"), "an unverified request is never answered")
	assert.Empty(t, api.ByMethod("chat.update"), "no message changed by refused clicks")

	// "/fkrollout status <id>" answers with the status query's summary.
	slash := url.Values{"command": {"/fkrollout"}, "text": {"status " + id}, "user_id": {"U0MALLORY"},
		"channel_id": {channel}, "team_id": {"T0TEAM"}, "response_url": {api.ResponseURL("slash")}}.Encode()
	require.Equal(t, http.StatusOK, slacktest.PostSigned(t, endpoint, secret, time.Now(), slash))
	msg = response("slash")
	assert.Contains(t, msg, "rollout "+id+": waiting-for-approval")
	assert.Contains(t, msg, "open gate "+gate.ID)

	// The approver's click, and Slack retrying it: one decision.
	for i := 0; i < 2; i++ {
		require.Equal(t, http.StatusOK, slacktest.PostSigned(t, endpoint, secret, time.Now(), click("U0ALICE", "alice"+strconv.Itoa(i))))
		msg = response("alice" + strconv.Itoa(i))
		assert.Contains(t, msg, "Recorded", "click %d", i)
	}

	var final rollout.Status
	require.NoError(t, run.Get(ctx, &final))
	// Decided from Slack (signed Updates, a refusal record): -record keeps it.
	recordHistory(t, ctx, c, id, "history-slack-decided.json")
	assert.Equal(t, rollout.StateCompleted, final.State, final.Summary())
	var decisions []approval.Decision
	for _, d := range final.Decisions {
		if d.GateID == gate.ID {
			decisions = append(decisions, d)
		}
	}
	require.Len(t, decisions, 1, "one decision on the promotion gate")
	assert.Equal(t, approval.Decision{GateID: gate.ID, Action: approval.ChoiceApprove, Actor: alice, Roles: []string{"dba"},
		Via: "slack", SlackUser: "U0ALICE", Time: decisions[0].Time}, decisions[0])
	for _, c := range final.Constraints {
		assert.Contains(t, []rollout.ConstraintState{rollout.CValidated, rollout.CTested}, c.Environments["production"].State, c.Name)
	}

	// The gate message was updated in place: no buttons, "Approved by".
	var updates []slacktest.Call
	for _, u := range api.ByMethod("chat.update") {
		if u.Form.Get("ts") == gate.Message.TS {
			updates = append(updates, u)
		}
	}
	require.NotEmpty(t, updates, "gate message updated")
	for _, u := range updates {
		b := slacktest.Blocks(t, u)
		assert.Empty(t, slacktest.Buttons(b), "no live button after the decision")
		assert.Contains(t, slacktest.Text(t, b), "Approved by <@U0ALICE>")
		assert.Contains(t, slacktest.Text(t, b), "Staging results", "the gate body stays")
	}
	// Every later post is a reply in the rollout's thread.
	later := api.ByMethod("chat.postMessage")[1:]
	for _, p := range later {
		assert.Equal(t, parent.TS, p.Form.Get("thread_ts"), "reply in the thread: %s", p.Form.Get("text"))
	}
	// The completion notice, then the completion report (one or more
	// parts, each a reply in the thread) close the thread.
	var completion bool
	var report strings.Builder
	for _, p := range later {
		if strings.HasPrefix(p.Form.Get("text"), "Completion report of rollout "+id) {
			report.WriteString(slacktest.Text(t, slacktest.Blocks(t, p)))
			continue
		}
		if strings.Contains(slacktest.Text(t, slacktest.Blocks(t, p)), "completed") {
			completion = true
		}
	}
	assert.True(t, completion, "completion notice posted in the thread")
	assert.Contains(t, report.String(), "FK Rollout — COMPLETED", "completion report posted in the thread")
	assert.Contains(t, report.String(), "## Success Metrics", "the report carries its success-metrics table")
	assert.True(t, strings.HasPrefix(later[len(later)-1].Form.Get("text"), "Completion report of rollout"), "the report is the last post")

	// The Slack secrets never reached the history.
	text := decodedHistory(t, historyJSON(t, ctx, c, id))
	assert.NotContains(t, text, botToken)
	assert.NotContains(t, text, secret)
	assert.Contains(t, text, "U0ALICE", "the scan reads the decision payloads")
}

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
