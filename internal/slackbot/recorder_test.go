package slackbot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/require"
)

// recorder is a local Slack Web API: slack-go talks to it over real HTTP
// (slack.OptionAPIURL), it records every call's payload and answers like Slack.
type recorder struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	calls     []call
	seq       int
	failures  map[string][]failure // method -> queued failures
	groups    map[string][]string  // usergroup -> members
	responses chan call            // response_url posts, for waiting
	ws        http.HandlerFunc     // Socket Mode WebSocket endpoint, when a test sets one
}

type call struct {
	Method string
	Form   url.Values     // form-encoded Web API calls
	JSON   map[string]any // JSON calls (views.open, response_url)
	At     time.Time
}

type failure struct {
	status     int
	retryAfter string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{t: t, failures: map[string][]failure{}, groups: map[string][]string{}, responses: make(chan call, 64)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) apiURL() string { return r.srv.URL + "/api/" }

func (r *recorder) responseURL(id string) string { return r.srv.URL + "/response/" + id }

func (r *recorder) failNext(method string, f failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[method] = append(r.failures[method], f)
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/ws" && r.ws != nil {
		r.ws(w, req)
		return
	}
	body, _ := io.ReadAll(req.Body)
	c := call{At: time.Now()}
	if strings.HasPrefix(req.URL.Path, "/response/") {
		c.Method = "response_url"
	} else {
		c.Method = strings.TrimPrefix(req.URL.Path, "/api/")
	}
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		c.JSON = map[string]any{}
		if len(body) > 0 {
			require.NoError(r.t, json.Unmarshal(body, &c.JSON), "json body of %s", c.Method)
		}
	} else {
		c.Form, _ = url.ParseQuery(string(body))
	}

	r.mu.Lock()
	r.calls = append(r.calls, c)
	if q := r.failures[c.Method]; len(q) > 0 {
		f := q[0]
		r.failures[c.Method] = q[1:]
		r.mu.Unlock()
		if f.retryAfter != "" {
			w.Header().Set("Retry-After", f.retryAfter)
		}
		w.WriteHeader(f.status)
		return
	}
	r.seq++
	seq := r.seq
	groups := r.groups
	r.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	var resp any
	switch c.Method {
	case "chat.postMessage":
		resp = map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": fmt.Sprintf("1700000000.%06d", seq)}
	case "chat.update":
		resp = map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": c.Form.Get("ts")}
	case "views.open":
		resp = map[string]any{"ok": true, "view": map[string]any{"id": "V" + strconv.Itoa(seq)}}
	case "usergroups.users.list":
		resp = map[string]any{"ok": true, "users": groups[c.Form.Get("usergroup")]}
	case "apps.connections.open":
		resp = map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/ws"}
	case "response_url":
		resp = map[string]any{"ok": true}
		r.responses <- c
	default:
		resp = map[string]any{"ok": false, "error": "unknown_method"}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

func (r *recorder) byMethod(method string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (r *recorder) all() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]call(nil), r.calls...)
}

// blocksOf decodes a recorded chat.postMessage / chat.update "blocks" field
// with slack-go's own decoder, as Slack would read it.
func blocksOf(t *testing.T, c call) slack.Blocks {
	t.Helper()
	raw := c.Form.Get("blocks")
	require.NotEmpty(t, raw, "%s call has no blocks", c.Method)
	var b slack.Blocks
	require.NoError(t, json.Unmarshal([]byte(raw), &b))
	return b
}

// buttons returns action_id -> button of every actions block.
func buttons(b slack.Blocks) map[string]*slack.ButtonBlockElement {
	out := map[string]*slack.ButtonBlockElement{}
	for _, bl := range b.BlockSet {
		ab, ok := bl.(*slack.ActionBlock)
		if !ok {
			continue
		}
		for _, el := range ab.Elements.ElementSet {
			if btn, ok := el.(*slack.ButtonBlockElement); ok {
				out[btn.ActionID] = btn
			}
		}
	}
	return out
}

// text concatenates every mrkdwn/plain text of the blocks.
func text(t *testing.T, b slack.Blocks) string {
	t.Helper()
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	var generic any
	require.NoError(t, json.Unmarshal(raw, &generic))
	var sb strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["text"].(string); ok {
				sb.WriteString(s + "\n")
			}
			for k, vv := range x {
				if k != "text" {
					walk(vv)
				} else if _, ok := vv.(string); !ok {
					walk(vv)
				}
			}
		case []any:
			for _, vv := range x {
				walk(vv)
			}
		}
	}
	walk(generic)
	return sb.String()
}

// sign computes Slack's v0 signature: HMAC-SHA256 over "v0:<ts>:<body>".
func sign(secret, ts, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("v0:" + ts + ":" + body))
	return "v0=" + hex.EncodeToString(m.Sum(nil))
}

func signedRequest(secret string, at time.Time, body string) *http.Request {
	ts := strconv.FormatInt(at.Unix(), 10)
	req := httptest.NewRequest(http.MethodPost, "/slack", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", ts)
	req.Header.Set("X-Slack-Signature", sign(secret, ts, body))
	return req
}

// interactionBody is the form body Slack posts for an interaction.
func interactionBody(t *testing.T, payload any) string {
	t.Helper()
	raw, err := json.Marshal(payload)
	require.NoError(t, err)
	return url.Values{"payload": {string(raw)}}.Encode()
}
