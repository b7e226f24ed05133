package slackbot

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/fkrollout/fkrollout/internal/testkit/slacktest"
)

// The fake Slack Web API lives in internal/slacktest, shared with the
// worker's end-to-end test; this file only gives it the short names this
// package's tests use.

// call is one request the local Slack API received.
type call = slacktest.Call

// failure is an error answer queued with failNext.
type failure struct {
	status     int
	retryAfter string // Retry-After header in seconds; not sent when empty
	apiError   string // Slack's "ok": false error code, with status 0
}

// recorder is a local Slack Web API: slack-go talks to it over real HTTP
// (slack.OptionAPIURL), it records every call's payload and answers like Slack.
type recorder struct {
	*slacktest.Recorder
	responses <-chan call // posts to response URLs, for waiting

	mu     sync.Mutex          // guards groups
	groups map[string][]string // usergroup -> members, read on every usergroups.users.list
	ws     http.HandlerFunc    // Socket Mode WebSocket endpoint, when a test sets one
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{groups: map[string][]string{}}
	r.Recorder = slacktest.NewRecorder(t, slacktest.Options{GroupMembers: r.members, SocketMode: r.socketMode})
	r.responses = r.Responses()
	return r
}

func (r *recorder) members(group string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.groups[group]
}

func (r *recorder) socketMode(w http.ResponseWriter, req *http.Request) {
	if r.ws == nil {
		http.NotFound(w, req)
		return
	}
	r.ws(w, req)
}

func (r *recorder) apiURL() string { return r.APIURL() }

func (r *recorder) responseURL(id string) string { return r.ResponseURL(id) }

func (r *recorder) failNext(method string, f failure) {
	r.FailNext(method, slacktest.Failure{Status: f.status, RetryAfter: f.retryAfter, Error: f.apiError})
}

func (r *recorder) byMethod(method string) []call { return r.ByMethod(method) }

func (r *recorder) all() []call { return r.Calls() }

func blocksOf(t *testing.T, c call) slack.Blocks {
	t.Helper()
	return slacktest.Blocks(t, c)
}

func buttons(b slack.Blocks) map[string]*slack.ButtonBlockElement { return slacktest.Buttons(b) }

func text(t *testing.T, b slack.Blocks) string {
	t.Helper()
	return slacktest.Text(t, b)
}

func sign(secret, ts, body string) string { return slacktest.Sign(secret, ts, body) }

func signedRequest(secret string, at time.Time, body string) *http.Request {
	return slacktest.NewSignedRequest(secret, at, body)
}

func interactionBody(t *testing.T, payload any) string {
	t.Helper()
	return slacktest.InteractionBody(t, payload)
}
