package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
)

// temporalFlags are the connection flags of every command that talks to
// Temporal. Unset, they leave the standard TEMPORAL_* variables and the
// Temporal config file (read by envconfig, as the worker does) in charge.
type temporalFlags struct {
	address, namespace, profile, configFile string
	connectTimeout                          time.Duration
	uiURL                                   string
}

func (t *temporalFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.address, "address", "", "Temporal frontend host:port (default $TEMPORAL_ADDRESS, the profile's, or localhost:7233)")
	fs.StringVar(&t.namespace, "namespace", "", "Temporal namespace (default $TEMPORAL_NAMESPACE, the profile's, or default)")
	fs.StringVar(&t.profile, "profile", "", "profile of the Temporal config file (default $TEMPORAL_PROFILE, or default)")
	fs.StringVar(&t.configFile, "config-file", "", "Temporal client config file, TOML (default $TEMPORAL_CONFIG_FILE, or temporalio/temporal.toml in the user config dir)")
	fs.DurationVar(&t.connectTimeout, "connect-timeout", 15*time.Second, "give up connecting to Temporal after this long")
	fs.StringVar(&t.uiURL, "ui", envOr("FKROLLOUT_UI_URL", "http://localhost:8233"), "Temporal UI base URL for links (FKROLLOUT_UI_URL)")
}

// options are the client options: config file profile, then TEMPORAL_*
// variables, then these flags.
func (t *temporalFlags) options() (client.Options, error) {
	opts, err := envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{
		ConfigFilePath:    t.configFile,
		ConfigFileProfile: t.profile,
	})
	if err != nil {
		return opts, fmt.Errorf("temporal client configuration (TEMPORAL_*, --profile, --config-file): %w", err)
	}
	if t.address != "" {
		opts.HostPort = t.address
	}
	if t.namespace != "" {
		opts.Namespace = t.namespace
	}
	if opts.Namespace == "" {
		opts.Namespace = client.DefaultNamespace
	}
	opts.Logger = quietLogger{}
	return opts, nil
}

// dial connects and returns the client and its namespace. Only the dial is
// bounded by --connect-timeout; the command's own work may take longer.
func (t *temporalFlags) dial(ctx context.Context) (client.Client, string, error) {
	if t.connectTimeout <= 0 {
		return nil, "", usageError{msg: fmt.Sprintf("--connect-timeout must be positive, got %s", t.connectTimeout)}
	}
	opts, err := t.options()
	if err != nil {
		return nil, "", err
	}
	flush, err := cliTracing(ctx, &opts)
	if err != nil {
		return nil, "", err
	}
	dctx, cancel := context.WithTimeout(ctx, t.connectTimeout)
	defer cancel()
	c, err := client.DialContext(dctx, opts)
	if err != nil {
		flush()
		return nil, "", fmt.Errorf("connect to temporal at %s: %w", cmp.Or(opts.HostPort, client.DefaultHostPort), err)
	}
	if len(opts.Interceptors) > 0 {
		return tracedClient{Client: c, flush: flush}, opts.Namespace, nil
	}
	return c, opts.Namespace, nil
}

func (t *temporalFlags) link(ns, id string) string { return uiLink(t.uiURL, ns, id) }

func uiLink(base, ns, id string) string {
	return strings.TrimRight(base, "/") + "/namespaces/" + ns + "/workflows/" + id
}

// quietLogger keeps the SDK's info chatter out of CLI output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"temporal:", msg}, kv...)...)
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func defaultActor() string {
	if v := os.Getenv("FKROLLOUT_ACTOR"); v != "" {
		return v
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return ""
}
