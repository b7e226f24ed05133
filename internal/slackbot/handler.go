package slackbot

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// maxBody bounds what we read before the signature is checked.
const maxBody = 1 << 20

// signatureWindow is how far a request's timestamp may be from now (Slack's
// recommendation). A signature seen once is refused for as long.
const signatureWindow = 5 * time.Minute

// Reasons a request is rejected: the log line's "reason" and the label the
// worker counts them under (fkrollout_slack_rejected_requests_total).
const (
	RejectMethod       = "method"          // not a POST
	RejectRateLimited  = "rate_limited"    // client address or Slack user over its rate (429)
	RejectBodyTooLarge = "body_too_large"  // body over 1 MiB (413)
	RejectBadSignature = "bad_signature"   // missing, malformed or wrong v0 signature (401)
	RejectStale        = "stale_timestamp" // timestamp more than 5 minutes off (401)
	RejectReplay       = "replay"          // a signature already seen (409)
	RejectMalformed    = "malformed"       // verified, but not a form, interaction or command (400)
)

// RejectReasons lists every reason, so a counter can start them all at zero.
var RejectReasons = []string{RejectMethod, RejectRateLimited, RejectBodyTooLarge, RejectBadSignature,
	RejectStale, RejectReplay, RejectMalformed}

// Handler receives Slack interaction payloads and slash commands over HTTP.
// Point both the app's Interactivity Request URL and the slash command's URL
// at it. In order, a request must: be a POST; be within the rate of its
// client address (429); have a body under 1 MiB (413); carry a valid v0
// signature of the signing secret with a timestamp within 5 minutes (401);
// not repeat a signature seen in that window (409, a replay); and be within
// the rate of its Slack user (429). Only then does it reach Interactions.
// Every rejection is logged with its reason and reported to Rejected.
type Handler struct {
	secret string
	x      *Interactions
	log    *slog.Logger
	// Rejected, when set, is called with the reason (one of RejectReasons)
	// of every rejected request, e.g. to count it. Set it before serving.
	Rejected func(reason string)

	now      func() time.Time
	seen     *replayCache
	bySource *limiter // per client address
	byUser   *limiter // per Slack team and user
}

// NewHandler builds the HTTP endpoint around the shared interaction core;
// limit applies per client address and per Slack user (zero: defaults).
func NewHandler(signingSecret string, x *Interactions, limit RateLimit, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	limit = limit.effective()
	return &Handler{
		secret: signingSecret, x: x, log: log, now: time.Now,
		seen:     newReplayCache(maxSeenSignatures),
		bySource: newLimiter(limit, maxBuckets),
		byUser:   newLimiter(limit, maxBuckets),
	}
}

func (h *Handler) reject(w http.ResponseWriter, r *http.Request, reason string, status int, detail any) {
	h.log.WarnContext(r.Context(), "slack: request rejected", "reason", reason, "status", status,
		"remote", r.RemoteAddr, "detail", fmt.Sprint(detail))
	if h.Rejected != nil {
		h.Rejected(reason)
	}
	http.Error(w, http.StatusText(status), status)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := h.now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, RejectMethod, http.StatusMethodNotAllowed, r.Method)
		return
	}
	source := sourceKey(r.RemoteAddr)
	if ok, wait := h.bySource.allow(source, now); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		h.reject(w, r, RejectRateLimited, http.StatusTooManyRequests, "client address "+source)
		return
	}
	if r.ContentLength > maxBody {
		h.reject(w, r, RejectBodyTooLarge, http.StatusRequestEntityTooLarge, fmt.Sprintf("content-length %d", r.ContentLength))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(w, r, RejectBodyTooLarge, http.StatusRequestEntityTooLarge, err)
			return
		}
		h.reject(w, r, RejectMalformed, http.StatusBadRequest, err)
		return
	}
	ts, reason, err := h.verify(r.Header, body, now)
	if err != nil {
		h.reject(w, r, reason, http.StatusUnauthorized, err)
		return
	}
	// Only verified signatures are remembered: nobody else can fill the set.
	if h.seen.seenBefore(r.Header.Get("X-Slack-Signature"), ts.Add(signatureWindow), now) {
		h.reject(w, r, RejectReplay, http.StatusConflict, "signature already seen at timestamp "+strconv.FormatInt(ts.Unix(), 10))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		h.reject(w, r, RejectMalformed, http.StatusBadRequest, err)
		return
	}
	switch {
	case form.Get("ssl_check") == "1":
		w.WriteHeader(http.StatusOK) // Slack probing the certificate of a slash command URL
	case form.Get("payload") != "":
		var ic slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &ic); err != nil {
			h.reject(w, r, RejectMalformed, http.StatusBadRequest, fmt.Errorf("interaction payload: %w", err))
			return
		}
		if !h.allowUser(w, r, ic.Team.ID, ic.User.ID, now) {
			return
		}
		writeAck(w, h.x.HandleInteraction(ic))
	case form.Get("command") != "":
		r.Body = io.NopCloser(bytes.NewReader(body))
		cmd, err := slack.SlashCommandParse(r)
		if err != nil {
			h.reject(w, r, RejectMalformed, http.StatusBadRequest, fmt.Errorf("slash command: %w", err))
			return
		}
		if !h.allowUser(w, r, cmd.TeamID, cmd.UserID, now) {
			return
		}
		writeAck(w, h.x.HandleSlash(cmd))
	default:
		h.reject(w, r, RejectMalformed, http.StatusBadRequest, "neither an interaction nor a slash command")
	}
}

// allowUser applies the per-user rate; false when the request was answered.
func (h *Handler) allowUser(w http.ResponseWriter, r *http.Request, team, user string, now time.Time) bool {
	if user == "" {
		return true
	}
	key := team + "/" + user
	if ok, wait := h.byUser.allow(key, now); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		h.reject(w, r, RejectRateLimited, http.StatusTooManyRequests, "slack user "+key)
		return false
	}
	return true
}

// verify checks Slack's v0 signature, "v0=" + hex(HMAC-SHA256(secret,
// "v0:<timestamp>:<body>")), and that the timestamp is within the window.
// It returns the request's timestamp, or the rejection reason.
func (h *Handler) verify(header http.Header, body []byte, now time.Time) (time.Time, string, error) {
	sig, tsText := header.Get("X-Slack-Signature"), header.Get("X-Slack-Request-Timestamp")
	if sig == "" || tsText == "" {
		return time.Time{}, RejectBadSignature, errors.New("missing X-Slack-Signature or X-Slack-Request-Timestamp")
	}
	secs, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return time.Time{}, RejectBadSignature, fmt.Errorf("timestamp %q is not Unix seconds", tsText)
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts); d > signatureWindow || d < -signatureWindow {
		return time.Time{}, RejectStale, fmt.Errorf("timestamp %s is %s away from now", ts.UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	mac := hmac.New(sha256.New, []byte(h.secret))
	mac.Write([]byte("v0:" + tsText + ":"))
	mac.Write(body)
	want := "v0=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return time.Time{}, RejectBadSignature, errors.New("signature does not match the body")
	}
	return ts, "", nil
}

// sourceKey is the rate-limit key of a client address: its IP, or its /64
// for IPv6 (one host usually owns a whole /64). X-Forwarded-For is not
// trusted: behind a proxy every request shares the proxy's bucket.
func sourceKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

func writeAck(w http.ResponseWriter, ack any) {
	if ack == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ack)
}
