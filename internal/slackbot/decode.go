package slackbot

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// knownKeys are the keys of the `slack:` section; anything else is a typo we
// report instead of silently running without, say, a signing secret.
var knownKeys = map[string]bool{
	"bot_token": true, "signing_secret": true, "app_token": true, "socket_mode": true,
	"listen_addr": true, "channel": true, "on_call_group": true, "users": true,
	"approver_groups": true, "group_cache_ttl": true, "api_url": true, "rate_limit": true,
}

// knownRateLimitKeys are the keys of `slack.rate_limit`.
var knownRateLimitKeys = map[string]bool{"per_second": true, "burst": true}

// DecodeConfig reads the worker configuration file's `slack:` section (kept
// as a raw yaml.Node by internal/config). A missing section is a disabled,
// valid configuration.
func DecodeConfig(node *yaml.Node) (Config, error) {
	var c Config
	if node == nil || node.Kind == 0 {
		return c, nil
	}
	n := node
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return c, nil
	}
	if n.Kind != yaml.MappingNode {
		return c, fmt.Errorf("slack (line %d): want a mapping of settings", n.Line)
	}
	var unknown []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !knownKeys[k] {
			unknown = append(unknown, fmt.Sprintf("%q (line %d)", k, n.Content[i].Line))
		}
		if v := n.Content[i+1]; k == "rate_limit" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				if sk := v.Content[j].Value; !knownRateLimitKeys[sk] {
					unknown = append(unknown, fmt.Sprintf("%q (line %d)", "rate_limit."+sk, v.Content[j].Line))
				}
			}
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return c, fmt.Errorf("slack: unknown setting %s", strings.Join(unknown, ", "))
	}
	if err := n.Decode(&c); err != nil {
		return c, fmt.Errorf("slack: %w", err)
	}
	return c, nil
}

// WithSecrets overrides the secrets with non-empty values from the worker's
// environment (FKROLLOUT_SLACK_BOT_TOKEN, _SIGNING_SECRET, _APP_TOKEN), so
// the file itself need hold none.
func (c Config) WithSecrets(botToken, signingSecret, appToken string) Config {
	if botToken != "" {
		c.BotToken = botToken
	}
	if signingSecret != "" {
		c.SigningSecret = signingSecret
	}
	if appToken != "" {
		c.AppToken = appToken
	}
	return c
}
