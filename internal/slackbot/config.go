package slackbot

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/identity"
)

// Config is the worker's Slack section. Secrets live here and only here: they
// never enter workflow input, activity arguments or history.
//
//	slack:
//	  bot_token: xoxb-...
//	  signing_secret: 8f1c...        # HTTP mode
//	  app_token: xapp-...            # Socket Mode
//	  socket_mode: false
//	  listen_addr: ":8090"           # HTTP mode: where Slack posts interactions
//	  channel: C0123456789
//	  on_call_group: S0ONCALL        # mentioned in rollback messages
//	  users:                         # Slack user ID -> approver identity
//	    U0ALICE: alice@example.com
//	  approver_groups:               # Slack user group ID -> role passed to the workflow
//	    S0DBA: dba
//	  group_cache_ttl: 5m
//	  rate_limit:                    # HTTP mode, per client address and per Slack user
//	    per_second: 10
//	    burst: 20
//
// Who may decide: only a Slack user listed in users. A click by anyone else
// is refused here with an ephemeral explanation and never reaches Temporal.
// Roles come only from approver_groups (Slack user groups the user is in).
//
// The worker signs every decision it sends for a verified, mapped user with
// a key derived from signing_secret (or, in Socket Mode, from app_token):
// see Signer. The workflow checks that signature against the public key the
// worker put into the rollout's effective policy, so rotating that secret
// changes the key and running rollouts stop accepting Slack decisions (the
// CLI still works).
type Config struct {
	BotToken       string            `yaml:"bot_token" json:"bot_token"`
	SigningSecret  string            `yaml:"signing_secret" json:"signing_secret"`
	AppToken       string            `yaml:"app_token" json:"app_token"`
	SocketMode     bool              `yaml:"socket_mode" json:"socket_mode"`
	ListenAddr     string            `yaml:"listen_addr" json:"listen_addr"`
	Channel        string            `yaml:"channel" json:"channel"`
	OnCallGroup    string            `yaml:"on_call_group" json:"on_call_group"`
	Users          map[string]string `yaml:"users" json:"users"`
	ApproverGroups map[string]string `yaml:"approver_groups" json:"approver_groups"`
	GroupCacheTTL  string            `yaml:"group_cache_ttl" json:"group_cache_ttl"`
	// RateLimit bounds requests to the HTTP endpoint (Handler), separately
	// per client address and per Slack user; over the limit a request gets
	// 429. Slack's own requests all come from Slack's addresses, so the
	// per-address bucket also caps Slack's total rate.
	RateLimit RateLimit `yaml:"rate_limit" json:"rate_limit"`
	// APIURL overrides https://slack.com/api/ (tests, proxies). Must end in "/".
	APIURL string `yaml:"api_url" json:"api_url"`
}

// RateLimit is a token bucket: PerSecond requests a second on average, up
// to Burst at once. Zero values take the defaults (10 a second, burst twice
// the rate).
type RateLimit struct {
	PerSecond float64 `yaml:"per_second" json:"per_second,omitempty"`
	Burst     int     `yaml:"burst" json:"burst,omitempty"`
}

// Default rate limit of the HTTP endpoint: far above what people clicking
// buttons produce, far below a flood.
const (
	DefaultRatePerSecond = 10
	DefaultRateBurst     = 20
)

// effective returns the limit with defaults applied.
func (r RateLimit) effective() RateLimit {
	if r.PerSecond == 0 {
		r.PerSecond = DefaultRatePerSecond
	}
	if r.Burst == 0 {
		r.Burst = max(1, int(math.Ceil(2*r.PerSecond)))
	}
	return r
}

func (r RateLimit) validate() error {
	var errs []error
	if r.PerSecond < 0 || math.IsNaN(r.PerSecond) || math.IsInf(r.PerSecond, 0) {
		errs = append(errs, fmt.Errorf("slack.rate_limit.per_second %v: want a positive number (0 for the default %d)", r.PerSecond, DefaultRatePerSecond))
	}
	if r.Burst < 0 {
		errs = append(errs, fmt.Errorf("slack.rate_limit.burst %d: want a positive number (0 for twice per_second)", r.Burst))
	}
	return errors.Join(errs...)
}

// Signer is the key the worker signs decisions and refusal records of
// verified, mapped Slack users with (key id identity.SlackSigner). It is
// derived from the signing secret in HTTP mode and from the app token in
// Socket Mode (which has no signing secret), so every worker sharing the
// configuration signs with the same key. nil when Slack is off.
func (c Config) Signer() ed25519.PrivateKey {
	secret := c.SigningSecret
	if c.SocketMode {
		secret = c.AppToken
	}
	if !c.Enabled() || secret == "" {
		return nil
	}
	return identity.DeriveSlackSigner(secret)
}

// SignerPublicKey is the public half of Signer in configuration form
// ("ed25519:<base64>"), for the rollouts' effective policy; "" when Slack
// is off. It is not a secret.
func (c Config) SignerPublicKey() string {
	key := c.Signer()
	if key == nil {
		return ""
	}
	return identity.FormatPublicKey(key.Public().(ed25519.PublicKey))
}

// Enabled reports whether Slack is configured at all. When it is not, the
// product runs without it: gates are decided from the CLI and Temporal UI.
func (c Config) Enabled() bool { return c.BotToken != "" && c.Channel != "" }

// Validate checks an enabled configuration before anything connects.
func (c Config) Validate() error {
	if !c.Enabled() {
		if c.BotToken != "" || c.Channel != "" {
			return errors.New("slack: both bot_token and channel are required (or neither, to disable Slack)")
		}
		return nil
	}
	var errs []error
	if !strings.HasPrefix(c.BotToken, "xoxb-") {
		errs = append(errs, errors.New("slack.bot_token must be a bot token (xoxb-...)"))
	}
	if c.SocketMode {
		if !strings.HasPrefix(c.AppToken, "xapp-") {
			errs = append(errs, errors.New("slack.socket_mode needs slack.app_token (xapp-...)"))
		}
	} else if c.SigningSecret == "" {
		errs = append(errs, errors.New("slack.signing_secret is required unless socket_mode is on"))
	}
	if c.APIURL != "" && !strings.HasSuffix(c.APIURL, "/") {
		errs = append(errs, fmt.Errorf("slack.api_url %q must end with /", c.APIURL))
	}
	if _, err := c.groupTTL(); err != nil {
		errs = append(errs, err)
	}
	if err := c.RateLimit.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) groupTTL() (time.Duration, error) {
	if c.GroupCacheTTL == "" {
		return 5 * time.Minute, nil
	}
	d, err := time.ParseDuration(c.GroupCacheTTL)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("slack.group_cache_ttl %q: want a duration such as 5m", c.GroupCacheTTL)
	}
	return d, nil
}

// Describe is the one line the worker logs at start, so operators know how
// gates can be decided.
func (c Config) Describe() string {
	switch {
	case !c.Enabled():
		return "Slack not configured: notifications off, decide gates from the CLI or the Temporal UI"
	case c.SocketMode:
		return fmt.Sprintf("Slack on (Socket Mode), channel %s", c.Channel)
	default:
		return fmt.Sprintf("Slack on (HTTP interactions on %s), channel %s", c.ListenAddr, c.Channel)
	}
}

// LogValue keeps tokens and the signing secret out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("enabled", c.Enabled()),
		slog.Bool("socket_mode", c.SocketMode),
		slog.String("channel", c.Channel),
		slog.String("listen_addr", c.ListenAddr),
		slog.String("on_call_group", c.OnCallGroup),
		slog.Int("users", len(c.Users)),
		slog.Int("approver_groups", len(c.ApproverGroups)),
		slog.String("signer_public_key", c.SignerPublicKey()),
		slog.String("rate_limit", fmt.Sprintf("%g/s burst %d", c.RateLimit.effective().PerSecond, c.RateLimit.effective().Burst)),
		slog.String("bot_token", redact(c.BotToken)),
		slog.String("signing_secret", redact(c.SigningSecret)),
		slog.String("app_token", redact(c.AppToken)),
	)
}

func redact(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}
