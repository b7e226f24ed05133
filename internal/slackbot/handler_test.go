package slackbot

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
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

// hardened is a Handler with its own rate limit and clock, recording the
// reasons it reports and its log.
type hardened struct {
	h       *Handler
	now     time.Time
	mu      sync.Mutex
	reasons []string
	logs    *syncBuffer
}

func newHardened(t *testing.T, f *fixture, limit RateLimit) *hardened {
	t.Helper()
	hd := &hardened{now: time.Now().Truncate(time.Second), logs: &syncBuffer{}}
	hd.h = NewHandler(testSecret, f.bot.Interactions, limit, slog.New(slog.NewJSONHandler(hd.logs, nil)))
	hd.h.now = func() time.Time {
		hd.mu.Lock()
		defer hd.mu.Unlock()
		return hd.now
	}
	hd.h.Rejected = func(reason string) {
		hd.mu.Lock()
		defer hd.mu.Unlock()
		hd.reasons = append(hd.reasons, reason)
	}
	return hd
}

func (hd *hardened) advance(d time.Duration) {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	hd.now = hd.now.Add(d)
}

func (hd *hardened) clock() time.Time {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	return hd.now
}

func (hd *hardened) rejected() []string {
	hd.mu.Lock()
	defer hd.mu.Unlock()
	return append([]string(nil), hd.reasons...)
}

// helpCommand is a slash command answered synchronously (usage), from user.
func helpCommand(user string) string {
	return url.Values{"command": {"/fkrollout"}, "text": {"help"}, "user_id": {user}, "team_id": {"T0TEAM"},
		"channel_id": {testChannel}}.Encode()
}

func from(req *http.Request, addr string) *http.Request {
	req.RemoteAddr = addr
	return req
}

func TestHandlerRefusesReplays(t *testing.T) {
	f := newFixture(t)
	hd := newHardened(t, f, RateLimit{})
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]
	body := interactionBody(t, click("U0BOB", msg, raw, approve, f.rec.responseURL("once")))
	at := hd.clock()

	require.Equal(t, http.StatusOK, serve(t, hd.h, signedRequest(testSecret, at, body)).Code)
	waitResponse(t, f.rec)
	f.bot.Interactions.Wait()

	// The same signed request again, a minute later: a replay.
	hd.advance(time.Minute)
	w := serve(t, hd.h, signedRequest(testSecret, at, body))
	assert.Equal(t, http.StatusConflict, w.Code)
	f.bot.Interactions.Wait()
	assert.Len(t, f.dec.decisions(), 1, "a replayed request never reaches the Decider")
	assert.Equal(t, []string{RejectReplay}, hd.rejected())
	assert.Contains(t, hd.logs.String(), `"reason":"replay"`)

	// After the window the timestamp check refuses it (and the set forgets it).
	hd.advance(5 * time.Minute)
	assert.Equal(t, http.StatusUnauthorized, serve(t, hd.h, signedRequest(testSecret, at, body)).Code)
	assert.Equal(t, []string{RejectReplay, RejectStale}, hd.rejected())

	// A rejected request is not remembered: once correctly signed, it passes.
	fresh := hd.clock()
	other := helpCommand("U0BOB")
	forged := signedRequest(testSecret, fresh, other)
	forged.Header.Set("X-Slack-Signature", sign("not-the-secret", forged.Header.Get("X-Slack-Request-Timestamp"), other))
	assert.Equal(t, http.StatusUnauthorized, serve(t, hd.h, forged).Code)
	assert.Equal(t, http.StatusOK, serve(t, hd.h, signedRequest(testSecret, fresh, other)).Code)
	assert.Equal(t, http.StatusConflict, serve(t, hd.h, signedRequest(testSecret, fresh, other)).Code)
}

func TestHandlerRateLimits(t *testing.T) {
	f := newFixture(t)
	hd := newHardened(t, f, RateLimit{PerSecond: 1, Burst: 3})

	post := func(user, addr string) *httptest.ResponseRecorder {
		// Distinct bodies: the same body in the same second would be a replay.
		body := helpCommand(user) + "&trigger_id=" + url.QueryEscape(hd.clock().String()+addr+time.Now().String())
		return serve(t, hd.h, from(signedRequest(testSecret, hd.clock(), body), addr))
	}

	t.Run("per client address", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			assert.Equal(t, http.StatusOK, post("U0BOB", "192.0.2.10:4000").Code, "burst %d", i)
		}
		w := post("U0ALICE", "192.0.2.10:4001") // another user, same address
		assert.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.Equal(t, "1", w.Header().Get("Retry-After"))
		// Unsigned garbage from the address is limited before anything else.
		garbage := httptest.NewRequest(http.MethodPost, "/slack", strings.NewReader("x=1"))
		garbage.RemoteAddr = "192.0.2.10:4002"
		assert.Equal(t, http.StatusTooManyRequests, serve(t, hd.h, garbage).Code)
		assert.Equal(t, http.StatusOK, post("U0ALICE", "192.0.2.11:4000").Code, "another address has its own bucket")

		hd.advance(time.Second)
		assert.Equal(t, http.StatusOK, post("U0ALICE", "192.0.2.10:4003").Code, "one token back after a second")
		assert.Equal(t, http.StatusTooManyRequests, post("U0ALICE", "192.0.2.10:4003").Code)
	})
	t.Run("IPv6 by /64", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			assert.Equal(t, http.StatusOK, post("U0V6", "[2001:db8:1:2::"+string(rune('a'+i))+"]:443").Code)
		}
		assert.Equal(t, http.StatusTooManyRequests, post("U0V6B", "[2001:db8:1:2:ffff::1]:443").Code, "same /64")
	})
	t.Run("per Slack user", func(t *testing.T) {
		hd.advance(time.Hour)
		for i := 0; i < 3; i++ {
			assert.Equal(t, http.StatusOK, post("U0DAVE", "198.51.100."+string(rune('1'+i))+":5000").Code)
		}
		w := post("U0DAVE", "198.51.100.9:5000") // fresh address, same user
		assert.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.NotEmpty(t, w.Header().Get("Retry-After"))
		assert.Equal(t, http.StatusOK, post("U0BOB", "198.51.100.9:5000").Code, "another user from that address")
	})

	for _, r := range hd.rejected() {
		assert.Equal(t, RejectRateLimited, r)
	}
	assert.Len(t, hd.rejected(), 5)
	logs := hd.logs.String()
	assert.Contains(t, logs, `"reason":"rate_limited"`)
	assert.Contains(t, logs, "client address 192.0.2.10")
	assert.Contains(t, logs, "client address 2001:db8:1:2::/64")
	assert.Contains(t, logs, "slack user T0TEAM/U0DAVE")
}

// TestHandlerReportsEveryRejection: each kind of rejected request gets its
// status, a log line with the reason and one Rejected call.
func TestHandlerReportsEveryRejection(t *testing.T) {
	f := newFixture(t)
	hd := newHardened(t, f, RateLimit{PerSecond: 100, Burst: 100})
	now := hd.clock()
	body := helpCommand("U0BOB")
	big := strings.Repeat("a", maxBody+1)

	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		reason string
	}{
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/slack", nil) }, http.StatusMethodNotAllowed, RejectMethod},
		{"forged signature", func() *http.Request {
			r := signedRequest(testSecret, now, body)
			r.Header.Set("X-Slack-Signature", "v0="+strings.Repeat("ab", 32))
			return r
		}, http.StatusUnauthorized, RejectBadSignature},
		{"no signature", func() *http.Request {
			r := signedRequest(testSecret, now, body)
			r.Header.Del("X-Slack-Signature")
			return r
		}, http.StatusUnauthorized, RejectBadSignature},
		{"timestamp not a number", func() *http.Request {
			r := signedRequest(testSecret, now, body)
			r.Header.Set("X-Slack-Request-Timestamp", "yesterday")
			return r
		}, http.StatusUnauthorized, RejectBadSignature},
		{"stale", func() *http.Request { return signedRequest(testSecret, now.Add(-6*time.Minute), body) }, http.StatusUnauthorized, RejectStale},
		{"future", func() *http.Request { return signedRequest(testSecret, now.Add(6*time.Minute), body) }, http.StatusUnauthorized, RejectStale},
		{"oversize", func() *http.Request { return signedRequest(testSecret, now, big) }, http.StatusRequestEntityTooLarge, RejectBodyTooLarge},
		{"oversize without a length", func() *http.Request {
			r := signedRequest(testSecret, now, big)
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge, RejectBodyTooLarge},
		{"valid", func() *http.Request { return signedRequest(testSecret, now, body) }, http.StatusOK, ""},
		{"replay", func() *http.Request { return signedRequest(testSecret, now, body) }, http.StatusConflict, RejectReplay},
		{"verified but not a command", func() *http.Request { return signedRequest(testSecret, now, "hello=1") }, http.StatusBadRequest, RejectMalformed},
		{"verified but a broken payload", func() *http.Request { return signedRequest(testSecret, now, "payload=%7Bnot+json") }, http.StatusBadRequest, RejectMalformed},
	}
	var want []string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(hd.logs.String())
			w := serve(t, hd.h, tc.req())
			assert.Equal(t, tc.status, w.Code)
			if tc.reason == "" {
				assert.Equal(t, want, hd.rejected(), "an accepted request is not reported")
				return
			}
			want = append(want, tc.reason)
			assert.Equal(t, want, hd.rejected())
			line := hd.logs.String()[before:]
			assert.Contains(t, line, `"msg":"slack: request rejected"`)
			assert.Contains(t, line, `"reason":"`+tc.reason+`"`)
		})
	}
	assert.NotContains(t, hd.logs.String(), testSecret)
	for _, r := range hd.rejected() {
		assert.Contains(t, RejectReasons, r)
	}
}

func TestReplayCacheIsBounded(t *testing.T) {
	c := newReplayCache(3)
	now := time.Unix(1_700_000_000, 0)
	exp := now.Add(signatureWindow)
	for _, s := range []string{"a", "b", "c"} {
		assert.False(t, c.seenBefore(s, exp, now))
	}
	assert.True(t, c.seenBefore("b", exp, now))
	assert.False(t, c.seenBefore("d", exp, now), "full: the oldest is forgotten")
	assert.Len(t, c.seen, 3)
	assert.False(t, c.seenBefore("a", exp, now), "a was evicted")
	later := exp.Add(time.Second)
	assert.False(t, c.seenBefore("e", later.Add(signatureWindow), later))
	assert.Len(t, c.seen, 1, "expired signatures are dropped")
}

func TestLimiterIsBounded(t *testing.T) {
	l := newLimiter(RateLimit{PerSecond: 1, Burst: 1}, 2)
	now := time.Unix(1_700_000_000, 0)
	ok, _ := l.allow("a", now)
	assert.True(t, ok)
	ok, wait := l.allow("a", now)
	assert.False(t, ok)
	assert.Equal(t, time.Second, wait)
	l.allow("b", now)
	l.allow("c", now.Add(2*time.Second)) // a and b are full again: swept
	assert.Len(t, l.buckets, 1)
	l.allow("d", now.Add(2*time.Second))
	l.allow("e", now.Add(2*time.Second)) // c and d are empty: start over
	assert.LessOrEqual(t, len(l.buckets), 2)
}

func TestServerTimeouts(t *testing.T) {
	srv := newServer(http.NotFoundHandler())
	assert.Equal(t, 5*time.Second, srv.ReadHeaderTimeout)
	assert.Equal(t, 10*time.Second, srv.ReadTimeout)
	assert.Equal(t, 10*time.Second, srv.WriteTimeout)
	assert.Equal(t, time.Minute, srv.IdleTimeout)
	assert.Equal(t, 64<<10, srv.MaxHeaderBytes)
}

func TestRateLimitConfig(t *testing.T) {
	assert.Equal(t, RateLimit{PerSecond: 10, Burst: 20}, RateLimit{}.effective())
	assert.Equal(t, RateLimit{PerSecond: 0.5, Burst: 1}, RateLimit{PerSecond: 0.5}.effective())
	assert.Equal(t, RateLimit{PerSecond: 10, Burst: 5}, RateLimit{Burst: 5}.effective())

	base := Config{BotToken: "xoxb-1", Channel: "C1", SigningSecret: "s"}
	for _, tc := range []struct {
		rl   RateLimit
		want string
	}{
		{RateLimit{PerSecond: 50, Burst: 100}, ""},
		{RateLimit{PerSecond: -1}, "slack.rate_limit.per_second"},
		{RateLimit{Burst: -2}, "slack.rate_limit.burst"},
	} {
		c := base
		c.RateLimit = tc.rl
		if tc.want == "" {
			assert.NoError(t, c.Validate())
		} else {
			assert.ErrorContains(t, c.Validate(), tc.want)
		}
	}

	var file struct {
		Slack yaml.Node `yaml:"slack"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("slack:\n  rate_limit:\n    per_second: 2.5\n    burst: 7\n"), &file))
	cfg, err := DecodeConfig(&file.Slack)
	require.NoError(t, err)
	assert.Equal(t, RateLimit{PerSecond: 2.5, Burst: 7}, cfg.RateLimit)
	require.NoError(t, yaml.Unmarshal([]byte("slack:\n  rate_limit:\n    per_sec: 2\n"), &file))
	_, err = DecodeConfig(&file.Slack)
	assert.ErrorContains(t, err, `unknown setting "rate_limit.per_sec" (line 3)`)
}

func TestSignerDerivesFromTheTransportSecret(t *testing.T) {
	http1 := Config{BotToken: "xoxb-1", Channel: "C1", SigningSecret: "secret-1"}
	http2 := Config{BotToken: "xoxb-other", Channel: "C2", SigningSecret: "secret-1"}
	socket := Config{BotToken: "xoxb-1", Channel: "C1", SocketMode: true, AppToken: "xapp-1", SigningSecret: "secret-1"}

	assert.Equal(t, identity.DeriveSlackSigner("secret-1"), http1.Signer())
	assert.Equal(t, http1.SignerPublicKey(), http2.SignerPublicKey(), "every worker with the same secret signs with the same key")
	assert.Equal(t, identity.DeriveSlackSigner("xapp-1"), socket.Signer(), "Socket Mode derives from the app token")
	assert.NotEqual(t, http1.SignerPublicKey(), socket.SignerPublicKey())
	assert.Nil(t, Config{}.Signer())
	assert.Empty(t, Config{SigningSecret: "s"}.SignerPublicKey(), "Slack off: no signer")

	pub, err := identity.ParsePublicKey(http1.SignerPublicKey())
	require.NoError(t, err)
	assert.Equal(t, http1.Signer().Public().(ed25519.PublicKey), pub)
	now := time.Now()
	claim := identity.Claim{Action: "decide", WorkflowID: "r", RunID: "run", Actor: "bob@example.com"}
	p := identity.Sign(http1.Signer(), identity.SlackSigner, claim, "n1", now)
	assert.NoError(t, identity.Verify(claim, &p, []string{http1.SignerPublicKey()}, now, time.Minute))

	var sb strings.Builder
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("start", "slack", http1)
	assert.Contains(t, sb.String(), http1.SignerPublicKey(), "the public key is logged for operators")
	assert.NotContains(t, sb.String(), "secret-1")
}

// TestHostileTextCannotPingOrLink: plan names, ids, reasons, actors, table
// names and figures from a rollout reach Slack as text: no broadcast, no
// mention, no disguised link, in blocks and in the notification text.
func TestHostileTextCannotPingOrLink(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	const evil = "<!channel> <@U0BOSS> <!subteam^S0DBA> <http://evil.example|click> & more"
	thread := MessageRef{Channel: testChannel, TS: "1700000000.000001"}
	events := []Event{
		{RolloutID: "fkr-" + evil, Kind: KindStarted, UILink: "http://ui/namespaces/default/workflows/x|<!channel>",
			Start: &StartInfo{PlanSummary: evil, Requester: evil, Environments: []string{evil}, Constraints: 1}},
		{RolloutID: evil, Kind: KindGateOpened, Environment: evil, Phase: evil, Thread: thread,
			Gate: &Gate{ID: evil, Kind: GateRemediation, Title: evil, Summary: evil, Remediation: &RemediationData{
				FKs: []OrphanReport{{Constraint: evil, Table: evil, Columns: []string{evil}, RefTable: evil, Orphans: 1, Samples: []string{evil},
					Dependents: []ImpactRow{{Table: evil, Constraint: evil, Action: evil, Rows: 1}}, Triggers: []string{evil},
					Impossible: map[string]string{evil: evil}}}}}},
		{RolloutID: evil, Kind: KindGateOpened, Thread: thread, Gate: &Gate{ID: "g", Kind: GatePromotion, Promotion: &PromotionData{
			From: evil, To: evil, Validated: []string{evil}, NotValid: []string{evil}, Tests: []TestResult{{Name: evil, Detail: evil}},
			Perf: []PerfRow{{Operation: evil}}, Warnings: []string{evil}}}},
		{RolloutID: evil, Kind: KindGateOpened, Thread: thread, Gate: &Gate{ID: "i", Kind: GateInvestigate, Investigate: &InvestigateData{
			Rule: evil, Figures: []Figure{{Name: evil, Unit: evil}}}}},
		{RolloutID: evil, Kind: KindGateDecided, Thread: thread, Gate: &Gate{ID: evil, Kind: GateApproval},
			Message:  MessageRef{Channel: testChannel, TS: "1700000000.000002"},
			Decision: &GateDecision{Actor: evil, Choice: evil, Reason: evil, Via: evil, SlackUser: "U0X> <!channel"}},
		{RolloutID: evil, Kind: KindRolledBack, Environment: evil, Thread: thread,
			Rollback: &RollbackInfo{Manual: true, Actor: evil, Rule: evil, Reason: evil, Constraints: []string{evil}}},
		{RolloutID: evil, Kind: KindFailed, Thread: thread, Text: evil, Phase: evil},
		{RolloutID: evil, Kind: KindPhase, Thread: thread, Environment: evil},
	}
	for _, ev := range events {
		_, err := f.bot.Notifier.Post(ctx, ev)
		require.NoError(t, err, ev.Kind)
	}
	calls := append(f.rec.byMethod("chat.postMessage"), f.rec.byMethod("chat.update")...)
	require.Len(t, calls, len(events)+1)
	for _, c := range calls {
		for _, field := range []string{"text", "blocks"} {
			v := c.Form.Get(field)
			var decoded string
			if field == "blocks" {
				// Look at the mrkdwn as Slack receives it (JSON-decoded).
				var blocks []map[string]any
				require.NoError(t, json.Unmarshal([]byte(v), &blocks))
				decoded = mrkdwnOf(blocks)
			} else {
				decoded = v
			}
			for _, bad := range []string{"<!channel>", "<@U0BOSS>", "<!subteam^S0DBA>", "<http://evil.example", "<@U0X>", "& more"} {
				assert.NotContains(t, decoded, bad, "%s of %s", field, c.Method)
			}
		}
	}
	// The text is still there, for people to read.
	started := f.rec.byMethod("chat.postMessage")[0]
	var blocks []map[string]any
	require.NoError(t, json.Unmarshal([]byte(started.Form.Get("blocks")), &blocks))
	text := mrkdwnOf(blocks)
	assert.Contains(t, text, "&lt;!channel&gt; &lt;@U0BOSS&gt;")
	assert.Contains(t, started.Form.Get("text"), "fkr-&lt;!channel&gt;")
	assert.Contains(t, text, "<http://ui/namespaces/default/workflows/x%7C&lt;!channel&gt;|Open in Temporal UI>", "the link target cannot end early")
}

// mrkdwnOf gathers every mrkdwn text of blocks (sections, fields, context),
// the strings Slack parses for mentions and links.
func mrkdwnOf(v any) string {
	var b strings.Builder
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if x["type"] == "mrkdwn" {
				s, _ := x["text"].(string)
				b.WriteString(s + "\n")
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		case []map[string]any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	return b.String()
}
