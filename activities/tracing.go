package activities

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of fkrollout's own spans.
const tracerName = "github.com/fkrollout/fkrollout/activities"

// startSQLSpan starts a child of the activity's span around engine work
// on a target database, so a trace shows which statements a decision
// caused and how long each took. The parent is the span the worker's
// tracing interceptor put in the context; without tracing it is a no-op
// span and so is this one.
func startSQLSpan(ctx context.Context, name, environment, constraint string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(attrs, attribute.String("db.system.name", "postgresql"), attribute.String("fkrollout.environment", environment))
	if constraint != "" {
		attrs = append(attrs, attribute.String("fkrollout.constraint", constraint))
	}
	return trace.SpanFromContext(ctx).TracerProvider().Tracer(tracerName).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// endSQLSpan ends span, marking it failed with the redacted error: an
// engine error can quote what the span exporter must not see.
func (a *Activities) endSQLSpan(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, a.redact(err.Error()))
	}
	span.End()
}
