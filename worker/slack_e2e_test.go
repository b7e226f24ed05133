package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/activities"
	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/devserver"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/pgtest"
	sqlassets "github.com/fkrollout/fkrollout/sql"
	"github.com/fkrollout/fkrollout/workflows"
)

// slackAPI is a local Slack Web API: the worker's slack-go client talks to it
// over real HTTP (slack.api_url), and it records every call like Slack would
// receive it: chat.postMessage / chat.update forms, usergroups lookups and
// the ephemeral answers posted to response_url.
type slackAPI struct {
	t      *testing.T
	srv    *httptest.Server
	groups map[string][]string

	mu    sync.Mutex
	seq   int
	calls []slackCall
}

type slackCall struct {
	Method string     // chat.postMessage, chat.update, usergroups.users.list, response/<id>
	Form   url.Values // Web API calls
	TS     string     // ts answered for chat.postMessage
	JSON   map[string]any
}

func newSlackAPI(t *testing.T, groups map[string][]string) *slackAPI {
	s := &slackAPI{t: t, groups: groups}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slackAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c := slackCall{Method: strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/"), "/")}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		c.JSON = map[string]any{}
		_ = json.Unmarshal(body, &c.JSON)
	} else {
		c.Form, _ = url.ParseQuery(string(body))
	}
	s.mu.Lock()
	s.seq++
	if c.Method == "chat.postMessage" {
		c.TS = fmt.Sprintf("1700000000.%06d", s.seq)
	}
	s.calls = append(s.calls, c)
	s.mu.Unlock()

	var resp map[string]any
	switch {
	case c.Method == "chat.postMessage":
		resp = map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": c.TS}
	case c.Method == "chat.update":
		resp = map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": c.Form.Get("ts")}
	case c.Method == "usergroups.users.list":
		resp = map[string]any{"ok": true, "users": s.groups[c.Form.Get("usergroup")]}
	case strings.HasPrefix(c.Method, "response/"):
		resp = map[string]any{"ok": true}
	default:
		resp = map[string]any{"ok": false, "error": "unknown_method"}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *slackAPI) byMethod(method string) []slackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []slackCall
	for _, c := range s.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// response waits for the ephemeral answer posted to response_url <id>.
func (s *slackAPI) response(t *testing.T, id string) string {
	t.Helper()
	var text string
	require.Eventually(t, func() bool {
		rs := s.byMethod("response/" + id)
		if len(rs) == 0 {
			return false
		}
		text, _ = rs[len(rs)-1].JSON["text"].(string)
		return true
	}, 20*time.Second, 50*time.Millisecond, "no answer on response_url %s", id)
	return text
}

// slackBlocks is a posted message's blocks as generic JSON.
func slackBlocks(t *testing.T, c slackCall) []map[string]any {
	t.Helper()
	var b []map[string]any
	require.NoError(t, json.Unmarshal([]byte(c.Form.Get("blocks")), &b), "blocks of %s", c.Method)
	return b
}

// slackButtons returns the buttons of the message's actions blocks.
func slackButtons(blocks []map[string]any) []map[string]any {
	var out []map[string]any
	for _, b := range blocks {
		if b["type"] != "actions" {
			continue
		}
		els, _ := b["elements"].([]any)
		for _, e := range els {
			if m, ok := e.(map[string]any); ok && m["type"] == "button" {
				out = append(out, m)
			}
		}
	}
	return out
}

// slackText concatenates every text field of the blocks.
func slackText(v any) string {
	var sb strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				if s, ok := vv.(string); ok && k == "text" {
					sb.WriteString(s + "\n")
				} else {
					walk(vv)
				}
			}
		case []any:
			for _, vv := range x {
				walk(vv)
			}
		case []map[string]any:
			for _, vv := range x {
				walk(vv)
			}
		}
	}
	walk(v)
	return sb.String()
}

// slackSign is Slack's v0 request signature: HMAC-SHA256 of "v0:<ts>:<body>".
func slackSign(secret, ts, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":" + body))
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

// postSigned sends body to the worker's Slack endpoint as Slack would.
func postSigned(t *testing.T, endpoint, secret string, at time.Time, body string) int {
	t.Helper()
	ts := strconv.FormatInt(at.Unix(), 10)
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", slackSign(secret, ts, body))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// clickBody is the form body of a block_actions interaction: user clicks
// button btn of the posted gate message (channel, ts, blocks).
func clickBody(t *testing.T, user, channel, ts string, blocks []map[string]any, btn map[string]any, responseURL string) string {
	t.Helper()
	payload := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "username": strings.ToLower(user)},
		"api_app_id":   "A0FKROLLOUT",
		"trigger_id":   "1337.42.trigger",
		"response_url": responseURL,
		"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false},
		"channel":      map[string]any{"id": channel, "name": "rollouts"},
		"message":      map[string]any{"type": "message", "ts": ts, "blocks": blocks},
		"actions": []map[string]any{{
			"type": "button", "action_id": btn["action_id"], "block_id": "fkr_actions", "value": btn["value"],
			"action_ts": "1700000001.000200", "text": btn["text"],
		}},
	}
	raw, err := json.Marshal(payload)
	require.NoError(t, err)
	return url.Values{"payload": {string(raw)}}.Encode()
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
	srv := devserver.Start(t)
	c := srv.Client()

	staging, production := pgtest.New(t), pgtest.New(t)
	seedDemo(t, staging, nil)
	seedDemo(t, production, nil)

	const (
		channel = "C0ROLLOUTS"
		mallory = "mallory@example.com"
	)
	api := newSlackAPI(t, map[string][]string{"S0DBA": {"U0ALICE", "U0RITA"}})
	addr := freeAddr(t)
	botToken, secret := "xoxb-e2e-"+randHex(8), "sign-"+randHex(12)
	cfgFile := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
slack:
  channel: %s
  listen_addr: %q
  api_url: %s/api/
  on_call_group: S0ONCALL
  users:
    U0ALICE: %s
    U0RITA: %s
    U0MALLORY: %s
  approver_groups:
    S0DBA: dba
`, channel, addr, api.srv.URL, alice, rita, mallory)), 0o600))
	env := map[string]string{
		"FKROLLOUT_DSN_STAGING":          staging.DSN,
		"FKROLLOUT_DSN_PRODUCTION":       production.DSN,
		"FKROLLOUT_BACKUP_DIR":           t.TempDir(),
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

	tq := "slack-e2e-" + randHex(4)
	w := worker.New(c, tq, worker.Options{})
	workflows.Register(w)
	acts := activities.New(cfg, notifier, log)
	defer acts.Close()
	acts.Register(w)
	require.NoError(t, w.Start())
	defer w.Stop()

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
	in := workflows.Input{
		Plan:      sqlassets.Migration,
		Requester: rita,
		Environments: []workflows.EnvironmentInput{
			{Name: "staging"},
			{Name: "production", MaintenanceWindow: windowNow()},
		},
		Approval: workflows.ApprovalPolicy{
			Default: workflows.GateRule{Approvers: []string{alice}},
			Gates:   map[string]workflows.GateRule{"promotion": {Approvers: []string{"role:dba"}}},
		},
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: tq}, workflows.WorkflowName, in)
	require.NoError(t, err)

	// The promotion gate opens and its message is posted in the rollout's thread.
	var gate workflows.Gate
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

	posts := api.byMethod("chat.postMessage")
	require.NotEmpty(t, posts)
	parent := posts[0]
	assert.Equal(t, channel, parent.Form.Get("channel"))
	assert.Empty(t, parent.Form.Get("thread_ts"), "the started post is the thread parent")
	assert.Contains(t, slackText(slackBlocks(t, parent)), rita)
	var gatePost *slackCall
	for i, p := range posts {
		if strings.Contains(p.Form.Get("blocks"), gate.ID) && len(slackButtons(slackBlocks(t, p))) > 0 {
			gatePost = &posts[i]
		}
	}
	require.NotNil(t, gatePost, "gate message with buttons posted")
	gateBlocks := slackBlocks(t, *gatePost)
	assert.Equal(t, gate.Message.Channel, gatePost.Form.Get("channel"))
	require.NotEmpty(t, parent.TS)
	assert.Equal(t, parent.TS, gatePost.Form.Get("thread_ts"), "gate message is a reply in the rollout's thread")
	assert.Equal(t, gatePost.TS, gate.Message.TS, "the workflow keeps the gate message's ref")
	var approve map[string]any
	for _, b := range slackButtons(gateBlocks) {
		if b["action_id"] == "fkrollout:"+workflows.ChoiceApprove {
			approve = b
		}
	}
	require.NotNil(t, approve, "approve button")
	click := func(user, respID string) string {
		return clickBody(t, user, gate.Message.Channel, gate.Message.TS, gateBlocks, approve, api.srv.URL+"/response/"+respID)
	}

	// Unverified requests: 401, nothing else happens.
	aliceClick := click("U0ALICE", "forged")
	for name, code := range map[string]int{
		"forged signature": postSigned(t, endpoint, "not-the-secret", time.Now(), aliceClick),
		"stale timestamp":  postSigned(t, endpoint, secret, time.Now().Add(-10*time.Minute), aliceClick),
	} {
		assert.Equal(t, http.StatusUnauthorized, code, name)
	}

	// Refused clicks: an unauthorized user, then the requester (four-eyes).
	require.Equal(t, http.StatusOK, postSigned(t, endpoint, secret, time.Now(), click("U0MALLORY", "mallory")))
	msg := api.response(t, "mallory")
	assert.Contains(t, msg, "refused")
	assert.Contains(t, msg, mallory+" is not an allowed approver")
	require.Equal(t, http.StatusOK, postSigned(t, endpoint, secret, time.Now(), click("U0RITA", "rita")))
	msg = api.response(t, "rita")
	assert.Contains(t, msg, "refused")
	assert.Contains(t, msg, "four-eyes")

	var st *workflows.Status
	require.Eventually(t, func() bool {
		st = queryStatusT(t, ctx, c, id)
		return len(st.Refusals) >= 2
	}, 10*time.Second, 100*time.Millisecond, "refusals recorded in the rollout")
	refusals := map[string]string{}
	for _, r := range st.Refusals {
		assert.Equal(t, gate.ID, r.GateID)
		assert.Equal(t, "slack:"+workflows.ChoiceApprove, r.Signal)
		refusals[r.Actor] = r.Reason
	}
	assert.Contains(t, refusals[mallory], "not an allowed approver")
	assert.Contains(t, refusals[rita], "four-eyes")
	assert.Empty(t, st.Decisions, "no decision from forged, stale or refused clicks")
	assert.Equal(t, []string{gate.ID}, st.OpenGateIDs())
	assert.Empty(t, api.byMethod("response/forged"), "an unverified request is never answered")
	assert.Empty(t, api.byMethod("chat.update"), "no message changed by refused clicks")

	// "/fkrollout status <id>" answers with the status query's summary.
	slash := url.Values{"command": {"/fkrollout"}, "text": {"status " + id}, "user_id": {"U0MALLORY"},
		"channel_id": {channel}, "team_id": {"T0TEAM"}, "response_url": {api.srv.URL + "/response/slash"}}.Encode()
	require.Equal(t, http.StatusOK, postSigned(t, endpoint, secret, time.Now(), slash))
	msg = api.response(t, "slash")
	assert.Contains(t, msg, "rollout "+id+": waiting-for-approval")
	assert.Contains(t, msg, "open gate "+gate.ID)

	// The approver's click, and Slack retrying it: one decision.
	for i := 0; i < 2; i++ {
		require.Equal(t, http.StatusOK, postSigned(t, endpoint, secret, time.Now(), click("U0ALICE", "alice"+strconv.Itoa(i))))
		msg = api.response(t, "alice"+strconv.Itoa(i))
		assert.Contains(t, msg, "Recorded", "click %d", i)
	}

	var final workflows.Status
	require.NoError(t, run.Get(ctx, &final))
	assert.Equal(t, workflows.StateCompleted, final.State, final.Summary())
	var decisions []workflows.Decision
	for _, d := range final.Decisions {
		if d.GateID == gate.ID {
			decisions = append(decisions, d)
		}
	}
	require.Len(t, decisions, 1, "one decision on the promotion gate")
	assert.Equal(t, workflows.Decision{GateID: gate.ID, Action: workflows.ChoiceApprove, Actor: alice, Roles: []string{"dba"},
		Via: "slack", SlackUser: "U0ALICE", Time: decisions[0].Time}, decisions[0])
	for _, c := range final.Constraints {
		assert.Contains(t, []workflows.ConstraintState{workflows.CValidated, workflows.CTested}, c.Environments["production"].State, c.Name)
	}

	// The gate message was updated in place: no buttons, "Approved by".
	var updates []slackCall
	for _, u := range api.byMethod("chat.update") {
		if u.Form.Get("ts") == gate.Message.TS {
			updates = append(updates, u)
		}
	}
	require.NotEmpty(t, updates, "gate message updated")
	for _, u := range updates {
		b := slackBlocks(t, u)
		assert.Empty(t, slackButtons(b), "no live button after the decision")
		assert.Contains(t, slackText(b), "Approved by <@U0ALICE>")
		assert.Contains(t, slackText(b), "Staging results", "the gate body stays")
	}
	// Every later post is a reply in the rollout's thread.
	later := api.byMethod("chat.postMessage")[1:]
	for _, p := range later {
		assert.Equal(t, parent.TS, p.Form.Get("thread_ts"), "reply in the thread: %s", p.Form.Get("text"))
	}
	assert.Contains(t, slackText(slackBlocks(t, later[len(later)-1])), "completed", "completion posted in the thread")

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
