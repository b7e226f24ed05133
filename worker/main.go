// Command worker runs fkrollout's Temporal worker: the FKRollout workflow
// and the activities that touch the databases.
//
// Temporal connection: the standard TEMPORAL_* variables (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*; or a profile in
// TEMPORAL_CONFIG_FILE), read by go.temporal.io/sdk/contrib/envconfig.
// fkrollout's own configuration (environments and their DSNs, backup dir,
// lock policy, deploy hooks, Slack, Prometheus): the YAML file in
// FKROLLOUT_CONFIG plus FKROLLOUT_* overrides (see internal/config).
//
// Logs are JSON on stdout; SDK metrics are served for Prometheus on
// metrics.listen_addr (FKROLLOUT_METRICS_ADDR). SIGINT/SIGTERM stop the
// worker gracefully: running activities get WorkerStopTimeout to finish.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // maintenance windows name IANA zones; do not depend on the host's tzdata

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	sdktally "go.temporal.io/sdk/contrib/tally"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/activities"
	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/workflows"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("worker stopped with an error", "error", err)
		os.Exit(1)
	}
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("FKROLLOUT_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

func run(ctx context.Context, log *slog.Logger) error {
	cfg, err := config.Load()
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log.Info("configuration loaded", "config", cfg)
	if len(cfg.Environments) == 0 {
		// Still useful (health-check schedules, gates of other workers'
		// rollouts), but every rollout activity would fail: say why now.
		log.Warn("no environments configured: rollouts naming an environment will fail; set FKROLLOUT_DSN_<ENV> or environments in " + config.EnvVar)
	}
	if cfg.Policy.TrustClientIdentity {
		log.Warn("DEVELOPMENT MODE (policy.trust_client_identity): gates believe the actor any Temporal client names; never use it where it matters")
	} else if len(cfg.Policy.Environments) == 0 {
		log.Warn("no approval policy (policy.environments): every rollout will be refused at start, because nobody could approve its gates")
	}

	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("temporal client configuration (TEMPORAL_*): %w", err)
	}
	opts.Logger = tlog.NewStructuredLogger(log)
	var metricsSrv *http.Server
	if cfg.Metrics.ListenAddr != "" {
		handler, srv, err := serveMetrics(cfg.Metrics.ListenAddr, log)
		if err != nil {
			return err
		}
		opts.MetricsHandler, metricsSrv = handler, srv
	}

	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to temporal: %w", err)
	}
	defer c.Close()

	ensureSearchAttributes(ctx, c, opts.Namespace, log)

	notifier, closeNotifier, err := newNotifier(ctx, cfg, c, log)
	if err != nil {
		return fmt.Errorf("notifications: %w", err)
	}
	defer closeNotifier()

	acts, err := activities.New(cfg, notifier, log)
	if err != nil {
		return err
	}
	defer acts.Close()
	// Rollouts record this public key in their effective policy, so the
	// workflow can check the decisions the Slack handler signs.
	acts.SlackSigner = slackSignerPublicKey(cfg)

	w := worker.New(c, cfg.TaskQueue, worker.Options{
		// Activities that are mid-statement get this long to finish on
		// SIGTERM; anything longer is retried by the next worker.
		WorkerStopTimeout: 20 * time.Second,
	})
	workflows.Register(w)
	acts.Register(w)
	// The production monitor's baseline, watcher and health-check
	// activities, on the same pools and notifier.
	activities.NewMonitorActivities(acts, cfg.Monitor).Register(w)

	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	ns := opts.Namespace
	if ns == "" {
		ns = client.DefaultNamespace
	}
	log.Info("worker started", "task_queue", cfg.TaskQueue, "namespace", ns, "environments", cfg.EnvironmentNames())
	<-ctx.Done()
	log.Info("shutting down")
	w.Stop()
	if metricsSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = metricsSrv.Shutdown(sctx)
	}
	return nil
}

// ensureSearchAttributes registers the rollout's search attributes when
// missing: without them every upsert fails the workflow task. Best effort:
// on Temporal Cloud (or without operator rights) it logs what to do.
func ensureSearchAttributes(ctx context.Context, c client.Client, namespace string, log *slog.Logger) {
	if namespace == "" {
		namespace = client.DefaultNamespace
	}
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		log.Warn("cannot list search attributes; make sure they are registered", "names", workflows.SearchAttributeNames, "error", err)
		return
	}
	missing := map[string]enums.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames {
		if _, ok := resp.CustomAttributes[name]; !ok {
			missing[name] = enums.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
		log.Error("search attributes missing and could not be added: register them as Keyword (temporal operator search-attribute create)", "missing", missing, "error", err)
		return
	}
	log.Info("registered search attributes", "names", workflows.SearchAttributeNames)
}

// serveMetrics exposes the SDK's metrics (workflow/activity task latency,
// failures, poller counts) and the rollouts' own (workflows/metrics.go) in
// Prometheus format on /metrics, every name prefixed "fkrollout_". The
// server's Addr is the address actually bound (addr may say port 0).
func serveMetrics(addr string, log *slog.Logger) (client.MetricsHandler, *http.Server, error) {
	reg := prom.NewRegistry()
	if err := registerSlackMetrics(reg); err != nil {
		return nil, nil, fmt.Errorf("register slack metrics: %w", err)
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{Registerer: reg})
	scope, _ := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
		Prefix:          "fkrollout",
	}, time.Second)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String())
	return sdktally.NewMetricsHandler(scope), srv, nil
}
