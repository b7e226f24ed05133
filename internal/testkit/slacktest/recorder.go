// Package slacktest is a test helper that speaks Slack's real wire protocol,
// so tests exercise slack-go and fkrollout's Slack code over real HTTP
// instead of mocks:
//
//   - Recorder is a local HTTP server standing in for https://slack.com/api/.
//     A Slack client pointed at Recorder.APIURL (slack.OptionAPIURL, the
//     worker's slack.api_url) talks to it like to Slack; it records every
//     call (Web API methods and posts to response URLs) and answers as Slack
//     would, or with a queued failure such as a rate limit.
//   - Sign, NewSignedRequest and PostSigned produce Slack's v0 request
//     signature for the requests Slack sends to an app's interaction
//     endpoint.
//   - Blocks, Buttons and Text read the Block Kit messages a client posted.
//
// It is imported by tests only.
package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ResponseURLMethod is Call.Method of a post to a response URL.
const ResponseURLMethod = "response_url"

// Paths of the Recorder's endpoints.
const (
	apiPath         = "/api/"
	responsePath    = "/response/"
	socketModePath  = "/socket-mode"
	responseBacklog = 64 // unread posts Responses holds
)

// Call is one request the Recorder received.
type Call struct {
	// Method is the Web API method ("chat.postMessage"), or
	// ResponseURLMethod for a post to a response URL.
	Method string
	// ResponseID is the id of the response URL posted to (see
	// Recorder.ResponseURL); empty for Web API calls.
	ResponseID string
	Form       url.Values     // form-encoded bodies (most Web API methods)
	JSON       map[string]any // JSON bodies (views.open, response URLs)
	// TS is the message timestamp answered to a chat.postMessage.
	TS string
	At time.Time // arrival
}

// Failure is an error answer queued for a method by Recorder.FailNext.
type Failure struct {
	Status     int    // HTTP status, e.g. http.StatusTooManyRequests
	RetryAfter string // Retry-After header in seconds; not sent when empty
	// Error, with Status 0 or 200, answers as Slack refuses a call: HTTP
	// 200 with {"ok":false,"error":Error} (channel_not_found, invalid_auth).
	Error string
	// Delay alone (no Status, no Error) carries the call out as Slack
	// would (a chat.postMessage is posted) but answers only after Delay:
	// a client that gives up sooner never learns it succeeded.
	Delay time.Duration
}

// slow reports whether f carries the call out and only answers late.
func (f *Failure) slow() bool { return f.Delay > 0 && f.Status == 0 && f.Error == "" }

// Options are a Recorder's optional behaviours.
type Options struct {
	// GroupMembers answers usergroups.users.list with the user IDs of a
	// user group. It is called on every lookup, so a test may change the
	// membership between calls; nil answers every group with no members.
	GroupMembers func(group string) []string
	// SocketMode serves the WebSocket URL apps.connections.open hands out
	// (Socket Mode); nil answers that URL with 404.
	SocketMode http.HandlerFunc
}

// Recorder is a local Slack Web API that records every call it receives.
// It is safe for concurrent use.
type Recorder struct {
	t    testing.TB
	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	calls     []Call
	answered  int                  // calls answered without a failure so far
	failures  map[string][]Failure // method -> failures to answer with, in order
	responses chan Call            // posts to response URLs, once Responses was called
}

// NewRecorder starts a Recorder that is closed when the test ends.
func NewRecorder(t testing.TB, opts Options) *Recorder {
	r := &Recorder{t: t, opts: opts, failures: map[string][]Failure{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the server's base URL.
func (r *Recorder) URL() string { return r.srv.URL }

// APIURL is the Web API base URL for slack.OptionAPIURL (ends in "/").
func (r *Recorder) APIURL() string { return r.srv.URL + apiPath }

// ResponseURL is a response URL (as Slack sends with an interaction or a
// slash command) whose posts are recorded under id.
func (r *Recorder) ResponseURL(id string) string { return r.srv.URL + responsePath + id }

// FailNext makes the next call of method fail with f instead of being
// answered; queued failures are used in order.
func (r *Recorder) FailNext(method string, f Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures[method] = append(r.failures[method], f)
}

// Calls returns every call so far, in arrival order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// ByMethod returns the calls of a method so far, in arrival order.
func (r *Recorder) ByMethod(method string) []Call {
	return r.matching(func(c Call) bool { return c.Method == method })
}

// ResponsesTo returns the posts to ResponseURL(id) so far, in arrival order.
func (r *Recorder) ResponsesTo(id string) []Call {
	return r.matching(func(c Call) bool { return c.Method == ResponseURLMethod && c.ResponseID == id })
}

// Responses delivers the posts to response URLs that arrive after its first
// call, in arrival order, for a test that waits on them. It holds 64 unread
// posts; one more fails the test.
func (r *Recorder) Responses() <-chan Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.responses == nil {
		r.responses = make(chan Call, responseBacklog)
	}
	return r.responses
}

// AwaitResponse waits up to timeout for a post to ResponseURL(id) and
// returns the latest one; it fails the test when none arrives.
func (r *Recorder) AwaitResponse(t testing.TB, id string, timeout time.Duration) Call {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if rs := r.ResponsesTo(id); len(rs) > 0 {
			return rs[len(rs)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("slacktest: no post to response URL %q within %s", id, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *Recorder) matching(keep func(Call) bool) []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Call
	for _, c := range r.calls {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

func (r *Recorder) serve(w http.ResponseWriter, req *http.Request) {
	c := Call{At: time.Now()}
	switch path := req.URL.Path; {
	case path == socketModePath:
		if r.opts.SocketMode == nil {
			http.NotFound(w, req)
			return
		}
		r.opts.SocketMode(w, req)
		return
	case strings.HasPrefix(path, apiPath):
		c.Method = strings.TrimPrefix(path, apiPath)
	case strings.HasPrefix(path, responsePath):
		c.Method, c.ResponseID = ResponseURLMethod, strings.TrimPrefix(path, responsePath)
	default:
		http.NotFound(w, req)
		return
	}
	if err := decodeBody(req, &c); err != nil {
		r.t.Errorf("slacktest: %s: %v", c.Method, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	number, failure := r.record(&c)
	if failure != nil && failure.slow() {
		select {
		case <-time.After(failure.Delay):
		case <-req.Context().Done():
			return // the client gave up; the call was carried out all the same
		}
		failure = nil
	}
	if failure != nil {
		if failure.RetryAfter != "" {
			w.Header().Set("Retry-After", failure.RetryAfter)
		}
		if failure.Error != "" && (failure.Status == 0 || failure.Status == http.StatusOK) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": failure.Error})
			return
		}
		w.WriteHeader(failure.Status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(r.answer(c, number)); err != nil {
		r.t.Errorf("slacktest: answer %s: %v", c.Method, err)
	}
}

// decodeBody fills c.Form or c.JSON from the request body.
func decodeBody(req *http.Request, c *Call) error {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		c.JSON = map[string]any{}
		if len(body) == 0 {
			return nil
		}
		if err := json.Unmarshal(body, &c.JSON); err != nil {
			return fmt.Errorf("decode JSON body: %w", err)
		}
		return nil
	}
	if c.Form, err = url.ParseQuery(string(body)); err != nil {
		return fmt.Errorf("decode form body: %w", err)
	}
	return nil
}

// record appends c to the calls. It returns the queued failure to answer
// with, if any, and the number of the answer (1, 2, ...), which numbers
// message timestamps and view IDs; a slow failure comes with its number
// (the call is carried out, only answered late).
func (r *Recorder) record(c *Call) (int, *Failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var slow *Failure
	if queued := r.failures[c.Method]; len(queued) > 0 {
		r.failures[c.Method] = queued[1:]
		if !queued[0].slow() {
			r.calls = append(r.calls, *c)
			return 0, &queued[0]
		}
		slow = &queued[0]
	}
	r.answered++
	if c.Method == "chat.postMessage" {
		c.TS = fmt.Sprintf("1700000000.%06d", r.answered)
	}
	r.calls = append(r.calls, *c)
	if c.Method == ResponseURLMethod && r.responses != nil {
		select {
		case r.responses <- *c:
		default:
			r.t.Errorf("slacktest: more than %d unread posts on Responses; dropped the one to %q", responseBacklog, c.ResponseID)
		}
	}
	return r.answered, slow
}

// messages are the messages posted so far in channel: top-level ones
// (thread "") or the parent and replies of a thread, oldest first, as
// conversations.history and conversations.replies list them (with their
// metadata).
func (r *Recorder) messages(channel, thread string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, c := range r.calls {
		if c.Method != "chat.postMessage" || c.TS == "" || c.Form.Get("channel") != channel {
			continue
		}
		parent := c.Form.Get("thread_ts")
		if (thread == "" && parent != "") || (thread != "" && c.TS != thread && parent != thread) {
			continue
		}
		m := map[string]any{"type": "message", "ts": c.TS, "text": c.Form.Get("text")}
		if parent != "" {
			m["thread_ts"] = parent
		}
		var meta map[string]any
		if raw := c.Form.Get("metadata"); raw != "" && json.Unmarshal([]byte(raw), &meta) == nil {
			m["metadata"] = meta
		}
		out = append(out, m)
	}
	return out
}

// answer is Slack's answer to an accepted call, the number-th answer.
func (r *Recorder) answer(c Call, number int) map[string]any {
	switch c.Method {
	case "chat.postMessage":
		return map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": c.TS}
	case "chat.update":
		return map[string]any{"ok": true, "channel": c.Form.Get("channel"), "ts": c.Form.Get("ts")}
	case "conversations.history":
		msgs := r.messages(c.Form.Get("channel"), "")
		slices.Reverse(msgs) // newest first, as Slack lists a channel
		return map[string]any{"ok": true, "messages": msgs, "has_more": false}
	case "conversations.replies":
		return map[string]any{"ok": true, "messages": r.messages(c.Form.Get("channel"), c.Form.Get("ts")), "has_more": false}
	case "views.open":
		return map[string]any{"ok": true, "view": map[string]any{"id": "V" + strconv.Itoa(number)}}
	case "usergroups.users.list":
		var members []string
		if r.opts.GroupMembers != nil {
			members = r.opts.GroupMembers(c.Form.Get("usergroup"))
		}
		return map[string]any{"ok": true, "users": members}
	case "apps.connections.open":
		return map[string]any{"ok": true, "url": "ws" + strings.TrimPrefix(r.srv.URL, "http") + socketModePath}
	case ResponseURLMethod:
		return map[string]any{"ok": true}
	default:
		return map[string]any{"ok": false, "error": "unknown_method"}
	}
}
