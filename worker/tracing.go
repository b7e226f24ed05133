package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"

	"github.com/fkrollout/fkrollout/internal/config"
)

// tracerName is the instrumentation scope of fkrollout's spans.
const tracerName = "github.com/fkrollout/fkrollout"

// tracing is the worker's OpenTelemetry pipeline: a TracerProvider and the
// Temporal interceptor that starts spans for workflows, Updates, signals,
// queries and activities and carries their context in Temporal headers. A
// nil *tracing is tracing off: every method does nothing.
type tracing struct {
	provider    *sdktrace.TracerProvider
	interceptor interceptor.Interceptor
}

// newTracing builds the pipeline the tracing section asks for, or nil when
// it is off.
func newTracing(ctx context.Context, cfg config.TracingConfig, version string) (*tracing, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	exp, err := spanExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return newTracingWith(cfg, version, exp)
}

// newTracingWith is newTracing with the exporter given (tests pass an
// in-memory one). Spans are batched: exporting never waits on a statement.
func newTracingWith(cfg config.TracingConfig, version string, exp sdktrace.SpanExporter) (*tracing, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", version),
	))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		// The ratio decides for traces that start here; a trace the CLI or
		// the Slack handler started is kept or dropped as they decided.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
	)
	icpt, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{Tracer: tp.Tracer(tracerName)})
	if err != nil {
		_ = tp.Shutdown(context.Background())
		return nil, fmt.Errorf("tracing interceptor: %w", err)
	}
	return &tracing{provider: tp, interceptor: icpt}, nil
}

func spanExporter(ctx context.Context, cfg config.TracingConfig) (sdktrace.SpanExporter, error) {
	switch cfg.Exporter {
	case config.TracingStdout:
		return stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case config.TracingOTLP:
		var opts []otlptracegrpc.Option
		if strings.Contains(cfg.Endpoint, "://") {
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		} else {
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint))
		}
		if cfg.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		// Does not dial: a collector that is down loses spans, never the
		// worker's start.
		exp, err := otlptracegrpc.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter for %s: %w", cfg.Endpoint, err)
		}
		return exp, nil
	default:
		return nil, fmt.Errorf("tracing.exporter: %q is not an exporter", cfg.Exporter)
	}
}

// addTo puts the interceptor in the client options. Workers built on that
// client use it too; the SDK asks that the same interceptor not also be in
// worker.Options, which would start every workflow and activity span twice.
func (t *tracing) addTo(opts *client.Options) {
	if t == nil {
		return
	}
	opts.Interceptors = append(opts.Interceptors, t.interceptor)
}

// shutdown flushes the spans still batched and stops the exporter; bounded,
// so a collector that is gone does not hold up the worker's exit.
func (t *tracing) shutdown(log *slog.Logger) {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		log.Warn("tracing shutdown: spans may be lost", "error", err)
	}
}
