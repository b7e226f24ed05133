package activities

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// With the worker's tracing interceptor, each engine call is a child span
// of its activity's span, named for what it does and tagged with the
// environment and constraint; a failure marks it failed without the
// secrets the error could quote. Without the interceptor the same calls
// run with no-op spans (every other test here).
func TestEngineCallsAreSpansOfTheirActivity(t *testing.T) {
	db := pgtest.New(t)
	db.Exec(t, `CREATE TABLE parent (id int PRIMARY KEY);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL);
		INSERT INTO parent VALUES (1); INSERT INTO child VALUES (1, 1), (2, 99);`)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	icpt, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{Tracer: tp.Tracer("test")})
	require.NoError(t, err)
	env, _ := newEnv(t, cfgWith(map[string]config.Environment{"staging": {DSN: db.DSN}}))
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{icpt}})

	in := rollout.ConstraintInput{Environment: "staging", RolloutID: "r-1", FK: childParentFK()}
	_, err = env.ExecuteActivity(rollout.ActApplyConstraint, in)
	require.NoError(t, err)
	_, err = env.ExecuteActivity(rollout.ActValidateConstraint, in) // the orphan fails it
	require.Error(t, err)
	_, err = env.ExecuteActivity(rollout.ActAudit, rollout.AuditInput{Environment: "staging", FKs: []plan.ForeignKey{childParentFK()}})
	require.NoError(t, err)
	_, err = env.ExecuteActivity(rollout.ActRemediate, rollout.RemediateInput{Environment: "staging", RolloutID: "r-1", FK: childParentFK(), Mode: "delete"})
	require.NoError(t, err)

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	for _, tc := range []struct {
		sql, activity string
		attrs         []attribute.KeyValue
		failed        bool
	}{
		{"sql apply", rollout.ActApplyConstraint, []attribute.KeyValue{attribute.String("fkrollout.constraint", "fk_child_parent"), attribute.String("db.sql.table", "public.child")}, false},
		{"sql validate", rollout.ActValidateConstraint, []attribute.KeyValue{attribute.String("fkrollout.constraint", "fk_child_parent")}, true},
		{"sql audit", rollout.ActAudit, []attribute.KeyValue{attribute.Int("fkrollout.constraints", 1)}, false},
		{"sql remediate", rollout.ActRemediate, []attribute.KeyValue{attribute.String("fkrollout.remediation_mode", "delete"), attribute.Int64("fkrollout.rows_affected", 1)}, false},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			s, ok := byName[tc.sql]
			require.True(t, ok, "no span %q among %d", tc.sql, len(spans))
			parent, ok := byName["RunActivity:"+tc.activity]
			require.True(t, ok)
			assert.Equal(t, parent.SpanContext.SpanID(), s.Parent.SpanID(), "child of its activity's span")
			assert.Equal(t, parent.SpanContext.TraceID(), s.SpanContext.TraceID())
			assert.Contains(t, s.Attributes, attribute.String("fkrollout.environment", "staging"))
			for _, a := range tc.attrs {
				assert.Contains(t, s.Attributes, a)
			}
			if tc.failed {
				assert.Equal(t, codes.Error, s.Status.Code)
				assert.NotContains(t, s.Status.Description, db.DSN)
			} else {
				assert.Equal(t, codes.Unset, s.Status.Code)
			}
		})
	}
}

// A failed span's description is the redacted error: spans leave the
// worker for a collector, which must not learn a password.
func TestFailedSpanIsRedacted(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	a := &Activities{Config: cfgWith(map[string]config.Environment{"staging": {DSN: "postgres://app:s3cret-pw@db/app"}})}
	ctx, parent := tp.Tracer("test").Start(context.Background(), "RunActivity")
	_, span := startSQLSpan(ctx, "sql apply", "staging", "fk")
	a.endSQLSpan(span, errors.New("connect postgres://app:s3cret-pw@db/app: refused"))
	parent.End()
	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	assert.Equal(t, "sql apply", spans[0].Name)
	assert.Equal(t, codes.Error, spans[0].Status.Code)
	assert.NotContains(t, spans[0].Status.Description, "s3cret-pw")
	assert.Contains(t, spans[0].Status.Description, "[redacted]")
}
