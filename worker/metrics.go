package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// latencyBuckets are the histogram buckets of every timer, in seconds: from
// a millisecond (an SDK request) to a week, because a rollout's gates and
// maintenance windows wait hours or days for people.
var latencyBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
	60, 120, 300, 600, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400,
}

// metricsServer is the worker's HTTP listener: Prometheus metrics on
// /metrics, liveness on /healthz and readiness on /readyz.
type metricsServer struct {
	// Handler is what the Temporal client reports through (SDK metrics and
	// the workflows' own).
	Handler client.MetricsHandler
	// Addr is the address actually bound (the configured one may say port 0).
	Addr string
	// Ready is served on /readyz.
	Ready *readiness

	srv   *http.Server
	scope io.Closer
}

// serveMetrics listens on addr and serves the SDK's metrics as Temporal
// documents them (temporal_request_total,
// temporal_workflow_task_schedule_to_start_latency_seconds_bucket, ...):
// the SDK's Prometheus naming scope adds _total to counters and _seconds to
// timers, and timers are histograms, so they aggregate across workers.
// fkrollout's own metrics are named fkrollout_* (ownMetrics).
func serveMetrics(addr string, log *slog.Logger) (*metricsServer, error) {
	reg := prom.NewRegistry()
	if err := registerSlackMetrics(reg); err != nil {
		return nil, err
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: latencyBuckets,
		// A name registered twice with other labels is a bug to see in the
		// log, not a reason to panic the worker.
		OnRegisterError: func(err error) { log.Warn("metrics: register", "error", err) },
	})
	root, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = closer.Close()
		return nil, fmt.Errorf("metrics listen on %s: %w", addr, err)
	}
	m := &metricsServer{
		Handler: ownMetrics{sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(root))},
		Addr:    ln.Addr().String(),
		Ready:   &readiness{},
		scope:   closer,
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.Handle("GET /readyz", m.Ready)
	m.srv = &http.Server{Addr: m.Addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	log.Info("serving metrics, /healthz and /readyz", "addr", m.Addr)
	return m, nil
}

// Close reports the last values, then stops the listener once a final
// scrape had a chance (Prometheus' scrape is not waited for).
func (m *metricsServer) Close(shutdownTimeout time.Duration) error {
	errScope := m.scope.Close()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	return errors.Join(errScope, m.srv.Shutdown(ctx))
}

// ownMetrics names fkrollout's own metrics fkrollout_*: every name the SDK
// emits starts temporal_, anything else reported through the handler (the
// workflows' gate and rollout metrics) gets the product's prefix unless it
// already has it. No global prefix: Temporal's dashboards and documented
// queries find the SDK's metrics under their own names.
type ownMetrics struct{ client.MetricsHandler }

const ownPrefix = "fkrollout_"

func ownName(name string) string {
	if strings.HasPrefix(name, "temporal_") || strings.HasPrefix(name, ownPrefix) {
		return name
	}
	return ownPrefix + name
}

func (h ownMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	return ownMetrics{h.MetricsHandler.WithTags(tags)}
}

func (h ownMetrics) Counter(name string) client.MetricsCounter {
	return h.MetricsHandler.Counter(ownName(name))
}

func (h ownMetrics) Gauge(name string) client.MetricsGauge {
	return h.MetricsHandler.Gauge(ownName(name))
}

func (h ownMetrics) Timer(name string) client.MetricsTimer {
	return h.MetricsHandler.Timer(ownName(name))
}

// Unwrap lets sdktally.ScopeFromHandler find the tally scope beneath.
func (h ownMetrics) Unwrap() client.MetricsHandler { return h.MetricsHandler }
