package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
)

// EnvTrace turns on tracing of the CLI's Temporal calls: "otlp" sends
// spans to the collector the standard OTEL_EXPORTER_OTLP_* variables name,
// "stdout" writes them as JSON on stderr (stdout stays the command's
// output). A decide then starts the trace the worker's spans join.
const EnvTrace = "FKROLLOUT_TRACE"

// cliTracing adds the Temporal tracing interceptor to opts when
// FKROLLOUT_TRACE asks for it, and returns what flushes the spans: call it
// when the client closes. Unset, opts is untouched and flush does nothing.
func cliTracing(ctx context.Context, opts *client.Options) (flush func(), err error) {
	kind := os.Getenv(EnvTrace)
	var exp sdktrace.SpanExporter
	switch kind {
	case "":
		return func() {}, nil
	case "otlp":
		exp, err = otlptracegrpc.New(ctx)
	case "stdout":
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
	default:
		return nil, usageError{msg: fmt.Sprintf("%s=%q: want otlp or stdout", EnvTrace, kind)}
	}
	if err != nil {
		return nil, fmt.Errorf("%s=%s: %w", EnvTrace, kind, err)
	}
	name := os.Getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = programName + "-cli"
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name), attribute.String("service.version", version()))))
	icpt, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{Tracer: tp.Tracer("github.com/fkrollout/fkrollout/starter")})
	if err != nil {
		_ = tp.Shutdown(ctx)
		return nil, fmt.Errorf("tracing interceptor: %w", err)
	}
	opts.Interceptors = append(opts.Interceptors, icpt)
	return func() {
		// Bounded: a collector that is gone must not hold the command.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			fmt.Fprintf(os.Stderr, "%s: tracing: spans may be lost: %v\n", programName, err)
		}
	}, nil
}

// tracedClient flushes the command's spans when the client closes, which
// every command does on its way out.
type tracedClient struct {
	client.Client
	flush func()
}

func (c tracedClient) Close() {
	c.Client.Close()
	c.flush()
}
