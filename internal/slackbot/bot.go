package slackbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/slack-go/slack"
)

// ErrDisabled is returned by New when the configuration does not enable Slack.
var ErrDisabled = errors.New("slack is not configured")

// Bot is everything the worker wires in: a Notifier for the notification
// activity, and the interaction core served over HTTP or Socket Mode.
type Bot struct {
	cfg          Config
	API          *slack.Client
	Notifier     *Notifier
	Directory    *Directory
	Interactions *Interactions
	// HTTP is the endpoint Run serves on listen_addr (HTTP mode); set
	// HTTP.Rejected before Run to count rejected requests.
	HTTP *Handler
	log  *slog.Logger
}

// New validates cfg and builds the bot. dec may be nil for a process that
// only posts notifications. extra options go to the Slack client (tests).
func New(cfg Config, dec Decider, log *slog.Logger, extra ...slack.Option) (*Bot, error) {
	if !cfg.Enabled() {
		return nil, ErrDisabled
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "slack")
	api := NewClient(cfg, extra...)
	dir, err := NewDirectory(api, cfg, log)
	if err != nil {
		return nil, err
	}
	x := NewInteractions(api, dec, dir, log)
	return &Bot{
		cfg: cfg, API: api, Directory: dir, log: log,
		Notifier:     NewNotifier(api, cfg, log),
		Interactions: x,
		HTTP:         NewHandler(cfg.SigningSecret, x, cfg.RateLimit, log),
	}, nil
}

// Handler is the HTTP endpoint for interactions and slash commands (the
// bot's one Handler, so its replay set and rate limits are shared by every
// use), for mounting on the worker's own server.
func (b *Bot) Handler() http.Handler { return b.HTTP }

// HTTP server limits of the interaction endpoint: Slack sends small bodies
// and wants its answer within 3 seconds, so anything slower is a client
// holding a connection open.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 64 << 10
)

// Run receives interactions until ctx ends: over Socket Mode when configured,
// otherwise over HTTP on cfg.ListenAddr (nothing to run when it is empty: the
// worker mounts Handler itself). In-flight decisions get 10 s to finish.
func (b *Bot) Run(ctx context.Context) error {
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Interactions.Shutdown(sctx)
	}()
	if b.cfg.SocketMode {
		return RunSocketMode(ctx, b.API, b.Interactions, b.log)
	}
	if b.cfg.ListenAddr == "" {
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", b.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("slack listen %s: %w", b.cfg.ListenAddr, err)
	}
	srv := newServer(b.Handler())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	b.log.InfoContext(ctx, "slack interactions listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("slack http server: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// newServer is the HTTP server of the interaction endpoint. The body limit
// is the Handler's (http.MaxBytesReader, 1 MiB).
func newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}
