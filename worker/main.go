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
// Logs are JSON on stdout. On metrics.listen_addr (FKROLLOUT_METRICS_ADDR)
// it serves Prometheus metrics (/metrics), liveness (/healthz) and
// readiness (/readyz). SIGINT/SIGTERM stop the worker gracefully: running
// activities get worker.stop_timeout to finish. -h prints the usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // maintenance windows name IANA zones; do not depend on the host's tzdata

	buildinfo "github.com/fkrollout/fkrollout/internal/version"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/activities"
	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// usage is what -h prints before the flags.
const usage = `Usage: worker [-version] [-probe url]

Runs fkrollout's Temporal worker: the rollout workflows and the activities
that touch the databases. It is configured by environment only:

  TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
  TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE   the Temporal connection
  FKROLLOUT_CONFIG                          the YAML configuration file
  FKROLLOUT_DSN_<ENV>                       an environment's database
  FKROLLOUT_METRICS_ADDR                    /metrics, /healthz, /readyz (e.g. :9464)
  FKROLLOUT_MAX_CONCURRENT_ACTIVITIES       activity slots (default: sized to the pools)
  FKROLLOUT_LOG_LEVEL                       debug, info, warn or error
  OTEL_EXPORTER_OTLP_ENDPOINT               the collector, when tracing.enabled names none

See docs/CONFIGURATION.md for every setting.

Flags:
`

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli parses the flags and runs the worker, returning the exit code. -h
// prints the usage and -version the version, both without reading the
// configuration or dialing Temporal.
func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	showVersion := fs.Bool("version", false, "print the version and exit")
	probeURL := fs.String("probe", "", "GET `url` (e.g. http://127.0.0.1:9464/readyz), print the answer and exit 0 on 200, else 1:\nthe container health check, as the image has no curl")
	printUsage := func(w io.Writer) {
		fmt.Fprint(w, usage)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout)
			return 0
		}
		fmt.Fprintf(stderr, "worker: %v\n\n", err)
		printUsage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "worker: unexpected arguments %q\n\n", fs.Args())
		printUsage(stderr)
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, buildVersion())
		return 0
	}
	if *probeURL != "" {
		return probe(*probeURL, stdout, stderr)
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: logLevel()}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log); err != nil {
		log.Error("worker stopped with an error", "error", err)
		return 1
	}
	return 0
}

// probe is -probe: one GET, bounded well inside a health check's timeout.
func probe(url string, stdout, stderr io.Writer) int {
	hc := &http.Client{Timeout: 4 * time.Second}
	resp, err := hc.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "probe: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(stdout, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "probe: %s answered %s\n", url, resp.Status)
		return 1
	}
	return 0
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("FKROLLOUT_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// version is set at build time (go build -ldflags "-X main.version=v1.4.0",
// as the Dockerfile does); otherwise buildVersion reads the module version
// and VCS revision Go records in the binary.
var version string

// buildVersion is the worker's version: the ldflags one, else what the Go
// toolchain recorded.
func buildVersion() string { return buildinfo.Of(version) }

// workerOptions sizes the worker from the configuration's worker section:
// activities hold database connections, so they are bounded by the pools
// (config.DefaultMaxConcurrentActivities), not the SDK's thousand.
func workerOptions(cfg *config.Config) worker.Options {
	w := cfg.Worker
	return worker.Options{
		MaxConcurrentActivityExecutionSize:      w.MaxConcurrentActivities,
		MaxConcurrentLocalActivityExecutionSize: w.MaxConcurrentLocalActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  w.MaxConcurrentWorkflowTasks,
		MaxConcurrentWorkflowTaskPollers:        w.WorkflowTaskPollers,
		MaxConcurrentActivityTaskPollers:        w.ActivityTaskPollers,
		// Activities that are mid-statement get this long to finish on
		// SIGTERM; anything longer is retried by the next worker.
		WorkerStopTimeout: w.StopTimeoutOr(20 * time.Second),
	}
}

func run(ctx context.Context, log *slog.Logger) error {
	v := buildVersion()
	log.Info("fkrollout worker starting", "version", v, "go", runtime.Version())
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
	if opts.Identity == "" {
		// The identity is recorded on every task this worker runs: with the
		// version in it, a history shows which build ran each step, which
		// is what one looks for when an upgrade meets a running rollout.
		host, _ := os.Hostname()
		opts.Identity = fmt.Sprintf("%d@%s@fkrollout-%s", os.Getpid(), host, strings.ReplaceAll(v, " ", "-"))
	}
	var metrics *metricsServer
	if cfg.Metrics.ListenAddr != "" {
		if metrics, err = serveMetrics(cfg.Metrics.ListenAddr, log); err != nil {
			return err
		}
		// Deferred first, so it runs last: the final values are reported
		// after the worker and the client have stopped.
		defer func() {
			if err := metrics.Close(5 * time.Second); err != nil {
				log.Warn("metrics shutdown", "error", err)
			}
		}()
		opts.MetricsHandler = metrics.Handler
	}

	tr, err := newTracing(ctx, cfg.Tracing, v)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer tr.shutdown(log) // after the worker and client stop: their last spans are flushed
	tr.addTo(&opts)

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

	wopts := workerOptions(cfg)
	w := worker.New(c, cfg.TaskQueue, wopts)
	workflows.Register(w)
	acts.Register(w)
	// The production monitor's baseline, watcher and health-check
	// activities, on the same pools and notifier.
	activities.NewMonitorActivities(acts, cfg.Monitor).Register(w)

	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	if metrics != nil {
		metrics.Ready.Set(readinessChecks(cfg, c), cfg.Secrets())
	}
	ns := opts.Namespace
	if ns == "" {
		ns = client.DefaultNamespace
	}
	log.Info("worker started", "version", v, "task_queue", cfg.TaskQueue, "namespace", ns, "environments", cfg.EnvironmentNames(),
		"max_concurrent_activities", wopts.MaxConcurrentActivityExecutionSize, "max_concurrent_workflow_tasks", wopts.MaxConcurrentWorkflowTaskExecutionSize)
	<-ctx.Done()
	log.Info("shutting down")
	w.Stop()
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
		log.Warn("cannot list search attributes; make sure they are registered", "names", rollout.SearchAttributeNames(), "error", err)
		return
	}
	missing := map[string]enums.IndexedValueType{}
	for _, name := range rollout.SearchAttributeNames() {
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
	log.Info("registered search attributes", "names", rollout.SearchAttributeNames())
}
