package slacktest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sign is Slack's v0 request signature (the X-Slack-Signature header) of a
// body sent at timestamp (Unix seconds, the X-Slack-Request-Timestamp
// header): "v0=" + hex(HMAC-SHA256(secret, "v0:<timestamp>:<body>")).
func Sign(secret, timestamp, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + timestamp + ":" + body))
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignRequest sets the headers Slack sends with an interaction or a slash
// command posted at time at: form content type, timestamp and signature.
func SignRequest(req *http.Request, secret string, at time.Time, body string) {
	timestamp := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", timestamp)
	req.Header.Set("X-Slack-Signature", Sign(secret, timestamp, body))
}

// NewSignedRequest is the request Slack posts to an app's endpoint at time
// at, signed with secret, ready for an http.Handler's ServeHTTP.
func NewSignedRequest(secret string, at time.Time, body string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/slack", strings.NewReader(body))
	SignRequest(req, secret, at, body)
	return req
}

// PostSigned posts body to a running app's Slack endpoint as Slack would at
// time at, signed with secret, and returns the response's status code.
func PostSigned(t testing.TB, endpoint, secret string, at time.Time, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatalf("slacktest: request to %s: %v", endpoint, err)
	}
	SignRequest(req, secret, at, body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("slacktest: post to %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("slacktest: read answer of %s: %v", endpoint, err)
	}
	return resp.StatusCode
}

// InteractionBody is the form body Slack posts for an interaction: the
// payload as JSON in the "payload" field.
func InteractionBody(t testing.TB, payload any) string {
	t.Helper()
	raw, err := json.Marshal(payload)
	if err != nil {
		t.Fatalf("slacktest: encode interaction payload: %v", err)
	}
	return url.Values{"payload": {string(raw)}}.Encode()
}
