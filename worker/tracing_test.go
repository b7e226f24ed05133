package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
)

const (
	tracedWorkflowName = "TracedDecide"
	tracedActivityName = "TracedApply"
	tracedUpdateName   = "decide"
)

// tracedDecide has the shape of a rollout gate: the Update records the
// decision, the main path waits for it and then runs the activity that
// touches the database.
func tracedDecide(ctx workflow.Context) (string, error) {
	var choice string
	if err := workflow.SetUpdateHandler(ctx, tracedUpdateName, func(ctx workflow.Context, c string) (string, error) {
		choice = c
		return "recorded " + c, nil
	}); err != nil {
		return "", err
	}
	if err := workflow.Await(ctx, func() bool { return choice != "" }); err != nil {
		return "", err
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second})
	var out string
	err := workflow.ExecuteActivity(ctx, tracedActivityName, choice).Get(ctx, &out)
	return out, err
}

// tracedApply starts its child span as the engine activities do: from the
// span the interceptor put in the activity's context.
func tracedApply(ctx context.Context, choice string) (string, error) {
	_, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("test").Start(ctx, "sql apply",
		trace.WithAttributes(attribute.String("fkrollout.environment", "staging"), attribute.String("fkrollout.constraint", "orders_customer_fk")))
	defer span.End()
	return "applied " + choice, nil
}

// keptSpans is the in-memory exporter without its reset on Shutdown, so
// the test reads what the worker's shutdown flushed.
type keptSpans struct{ *tracetest.InMemoryExporter }

func (keptSpans) Shutdown(context.Context) error { return nil }

// A decision is followable from the client to the statement: with the
// interceptor on the client (and so on the worker built from it), the
// client's Update, the workflow's Update handler, the workflow run and the
// activity with its SQL span are spans of one trace, started by the
// client's span; each span is started once.
func TestTracingFollowsADecisionToItsStatement(t *testing.T) {
	srv := devserver.Start(t, temporal.SearchAttributes{})
	exp := keptSpans{tracetest.NewInMemoryExporter()}
	tr, err := newTracingWith(config.TracingConfig{Enabled: true, ServiceName: "fkrollout-test"}, "test", exp)
	require.NoError(t, err)

	opts := client.Options{HostPort: srv.FrontendHostPort(), Namespace: "default"}
	tr.addTo(&opts)
	require.Len(t, opts.Interceptors, 1)
	c, err := client.Dial(opts)
	require.NoError(t, err)
	defer c.Close()

	const queue = "tracing-test"
	w := worker.New(c, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(tracedDecide, workflow.RegisterOptions{Name: tracedWorkflowName})
	w.RegisterActivityWithOptions(tracedApply, activity.RegisterOptions{Name: tracedActivityName})
	require.NoError(t, w.Start())
	stopped := false
	defer func() {
		if !stopped {
			w.Stop()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// run starts the workflow under startCtx and decides under decideCtx, as
	// one command (the same span) or two processes (two spans) would.
	run := func(id string, startCtx, decideCtx context.Context) {
		t.Helper()
		run, err := c.ExecuteWorkflow(startCtx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, tracedWorkflowName)
		require.NoError(t, err)
		h, err := c.UpdateWorkflow(decideCtx, client.UpdateWorkflowOptions{WorkflowID: id, UpdateName: tracedUpdateName,
			Args: []any{"approve"}, WaitForStage: client.WorkflowUpdateStageCompleted})
		require.NoError(t, err)
		var ack string
		require.NoError(t, h.Get(ctx, &ack))
		assert.Equal(t, "recorded approve", ack)
		var out string
		require.NoError(t, run.Get(ctx, &out))
		assert.Equal(t, "applied approve", out)
	}

	clientTracer := tr.provider.Tracer("test-client")
	oneCtx, one := clientTracer.Start(ctx, "fkrollout decide")
	run("traced-one-span", oneCtx, oneCtx)
	one.End()

	startCtx, start := clientTracer.Start(ctx, "fkrollout rollout")
	decideCtx, decide := clientTracer.Start(ctx, "fkrollout approve")
	run("traced-two-processes", startCtx, decideCtx)
	start.End()
	decide.End()

	// What the worker does on exit: stop, then flush what is batched.
	w.Stop()
	stopped = true
	tr.shutdown(discardLogger())
	spans := exp.GetSpans()
	require.NotEmpty(t, spans)

	t.Run("one client span", func(t *testing.T) {
		got := spansOf(spans, "traced-one-span")
		for _, name := range []string{"StartWorkflow:" + tracedWorkflowName, "RunWorkflow:" + tracedWorkflowName,
			"UpdateWorkflow:" + tracedUpdateName, "HandleUpdate:" + tracedUpdateName,
			"StartActivity:" + tracedActivityName, "RunActivity:" + tracedActivityName} {
			require.Len(t, got[name], 1, "span %s once (have %v)", name, names(got))
			assert.Equal(t, one.SpanContext().TraceID(), got[name][0].SpanContext.TraceID(), "%s in the client's trace", name)
		}
		// The SQL span carries no workflow tag: find it under its activity.
		act := got["RunActivity:"+tracedActivityName][0]
		sql := childrenOf(spans, act)
		require.Len(t, sql, 1)
		assert.Equal(t, "sql apply", sql[0].Name)
		assert.Equal(t, one.SpanContext().TraceID(), sql[0].SpanContext.TraceID())
		assert.Contains(t, sql[0].Attributes, attribute.String("fkrollout.constraint", "orders_customer_fk"))

		// Parents, not only the trace: handler under the client's Update,
		// activity under the workflow run, which is under the client's span.
		assert.True(t, descends(spans, got["HandleUpdate:"+tracedUpdateName][0], got["UpdateWorkflow:"+tracedUpdateName][0]))
		assert.True(t, descends(spans, act, got["RunWorkflow:"+tracedWorkflowName][0]))
		assert.Equal(t, one.SpanContext().SpanID(), got["UpdateWorkflow:"+tracedUpdateName][0].Parent.SpanID())
		assert.Equal(t, "fkrollout-test", serviceName(act))
	})

	// A decide from another process (the CLI's decide, the Slack handler)
	// is its own trace: the Update handler is in it; the statements the
	// main path runs afterwards are in the trace that started the rollout.
	// The workflow id every span carries joins them.
	t.Run("decide from another process", func(t *testing.T) {
		got := spansOf(spans, "traced-two-processes")
		require.Len(t, got["HandleUpdate:"+tracedUpdateName], 1, "have %v", names(got))
		require.Len(t, got["RunActivity:"+tracedActivityName], 1, "have %v", names(got))
		assert.Equal(t, decide.SpanContext().TraceID(), got["HandleUpdate:"+tracedUpdateName][0].SpanContext.TraceID())
		assert.Equal(t, start.SpanContext().TraceID(), got["RunActivity:"+tracedActivityName][0].SpanContext.TraceID())
	})
}

// Off, nothing is built: no provider, no interceptor, the client options
// untouched. On, each exporter builds without reaching a collector.
func TestTracingOffBuildsNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  config.TracingConfig
		on   bool
	}{
		{"off", config.TracingConfig{Exporter: config.TracingOTLP, Endpoint: "otel-collector:4317"}, false},
		{"stdout", config.TracingConfig{Enabled: true, Exporter: config.TracingStdout, ServiceName: "x"}, true},
		{"otlp host:port", config.TracingConfig{Enabled: true, Exporter: config.TracingOTLP, Endpoint: "127.0.0.1:1", Insecure: true, ServiceName: "x"}, true},
		{"otlp url", config.TracingConfig{Enabled: true, Exporter: config.TracingOTLP, Endpoint: "http://127.0.0.1:1", ServiceName: "x"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := newTracing(ctx, tc.cfg, "test")
			require.NoError(t, err)
			var opts client.Options
			tr.addTo(&opts)
			if !tc.on {
				assert.Nil(t, tr)
				assert.Empty(t, opts.Interceptors)
				tr.shutdown(discardLogger()) // a nil pipeline shuts down as nothing
				return
			}
			require.NotNil(t, tr)
			assert.Len(t, opts.Interceptors, 1)
			tr.shutdown(discardLogger())
		})
	}
}

// The worker refuses a tracing section it cannot honour at load, naming
// the field, before it dials anything.
func TestTracingConfigRefused(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"tracing: {enabled: true, exporter: zipkin}\n", `tracing.exporter: "zipkin" is not an exporter`},
		{"tracing: {enabled: true, exporter: stdout, sample_ratio: 2}\n", `tracing.sample_ratio: 2 is not between 0 and 1`},
	} {
		path := filepath.Join(t.TempDir(), "fkrollout.yaml")
		require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o600))
		_, err := config.LoadFrom(path, func(k string) (string, bool) { return "", k == "\x00names" })
		assert.ErrorContains(t, err, tc.want)
	}
}

// spansOf groups by name the spans tagged with workflow id, plus the
// client's spans of the same traces (which carry the id too).
func spansOf(spans tracetest.SpanStubs, id string) map[string][]tracetest.SpanStub {
	out := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		for _, a := range s.Attributes {
			if a.Key == "temporalWorkflowID" && a.Value.AsString() == id {
				out[s.Name] = append(out[s.Name], s)
			}
		}
	}
	return out
}

func names(m map[string][]tracetest.SpanStub) []string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	return out
}

func childrenOf(spans tracetest.SpanStubs, parent tracetest.SpanStub) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Parent.SpanID() == parent.SpanContext.SpanID() && s.Parent.TraceID() == parent.SpanContext.TraceID() {
			out = append(out, s)
		}
	}
	return out
}

// descends reports whether s has anc among its ancestors.
func descends(spans tracetest.SpanStubs, s, anc tracetest.SpanStub) bool {
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, x := range spans {
		byID[x.SpanContext.SpanID()] = x
	}
	for i := 0; i < len(spans) && s.Parent.IsValid(); i++ {
		if s.Parent.SpanID() == anc.SpanContext.SpanID() {
			return true
		}
		p, ok := byID[s.Parent.SpanID()]
		if !ok {
			return false
		}
		s = p
	}
	return false
}

func serviceName(s tracetest.SpanStub) string {
	v, _ := s.Resource.Set().Value("service.name")
	return v.AsString()
}

var _ sdktrace.SpanExporter = keptSpans{}

// The example file's commented tracing block, uncommented, is a section
// the worker accepts: operators copy it as it is.
func TestExampleTracingBlockLoads(t *testing.T) {
	var out []string
	in := false
	for _, line := range strings.Split(mustRead(t, "fkrollout.example.yaml"), "\n") {
		switch {
		case line == "# tracing:":
			in = true
			out = append(out, "tracing:")
		case in && strings.HasPrefix(line, "#   "):
			out = append(out, strings.TrimPrefix(line, "# "))
		default:
			in = false
		}
	}
	require.Greater(t, len(out), 2, "no commented tracing block in the example")
	path := filepath.Join(t.TempDir(), "tracing.yaml")
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o600))
	cfg, err := config.LoadFrom(path, func(k string) (string, bool) { return "", k == "\x00names" })
	require.NoError(t, err)
	assert.True(t, cfg.Tracing.Enabled)
	assert.Equal(t, "otel-collector:4317", cfg.Tracing.Endpoint)
	assert.Equal(t, 1.0, cfg.Tracing.Ratio())
}
