package slacktest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/slacktest"
)

// hmacSHA256 is the signature computed here, independently of Sign.
func hmacSHA256(secret, message string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(message))
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

func TestSign(t *testing.T) {
	const (
		secret = "sign-secret"
		ts     = "1700000000"
		body   = "payload=%7B%7D"
	)
	// Slack's documented example ("Verifying requests from Slack").
	const (
		docSecret = "8f742231b10e8888abcd99yyyzzz85a5"
		docTS     = "1531420618"
		docBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V" +
			"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=" +
			"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN" +
			"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	)
	reference := slacktest.Sign(secret, ts, body)
	cases := []struct {
		name               string
		secret, ts, body   string
		want               string
		differsFromDefault bool
	}{
		{name: "HMAC-SHA256 of v0:<ts>:<body>", secret: secret, ts: ts, body: body, want: hmacSHA256(secret, "v0:"+ts+":"+body)},
		{name: "known vector", secret: secret, ts: ts, body: body, want: "v0=808a1138a44de6f595bff4d97b8ef46ca5e087556e937917b308b7db7f39a8bb"},
		{name: "Slack's documented example", secret: docSecret, ts: docTS, body: docBody, want: "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503", differsFromDefault: true},
		{name: "changed body", secret: secret, ts: ts, body: body + "&x=1", want: hmacSHA256(secret, "v0:"+ts+":"+body+"&x=1"), differsFromDefault: true},
		{name: "changed timestamp", secret: secret, ts: "1700000001", body: body, want: hmacSHA256(secret, "v0:1700000001:"+body), differsFromDefault: true},
		{name: "changed secret", secret: "other-secret", ts: ts, body: body, want: hmacSHA256("other-secret", "v0:"+ts+":"+body), differsFromDefault: true},
		{name: "empty body", secret: secret, ts: ts, want: hmacSHA256(secret, "v0:"+ts+":"), differsFromDefault: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := slacktest.Sign(tc.secret, tc.ts, tc.body)
			assert.Equal(t, tc.want, got)
			if tc.differsFromDefault {
				assert.NotEqual(t, reference, got)
			} else {
				assert.Equal(t, reference, got)
			}
		})
	}
}

// TestNewSignedRequestPassesSlackGoVerification checks the signed request
// against the verifier apps use (slack-go's), for the right secret only.
func TestNewSignedRequestPassesSlackGoVerification(t *testing.T) {
	const body = "command=%2Ffkrollout&text=status+fkr-1"
	for _, tc := range []struct {
		name   string
		secret string
		valid  bool
	}{
		{name: "same secret", secret: "s3cr3t", valid: true},
		{name: "other secret", secret: "not-the-secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := slacktest.NewSignedRequest(tc.secret, time.Now(), body)
			assert.Equal(t, "application/x-www-form-urlencoded", req.Header.Get("Content-Type"))
			sv, err := slack.NewSecretsVerifier(req.Header, "s3cr3t")
			require.NoError(t, err)
			_, err = io.Copy(&sv, req.Body)
			require.NoError(t, err)
			if tc.valid {
				assert.NoError(t, sv.Ensure())
			} else {
				assert.Error(t, sv.Ensure())
			}
		})
	}
}
