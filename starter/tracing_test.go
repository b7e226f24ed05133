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
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/opentelemetry"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// FKROLLOUT_TRACE adds the tracing interceptor to the CLI's client only
// when set to an exporter; a misspelt value is a usage error, not a
// silently untraced command.
func TestCLITracingFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		value string
		on    bool
		err   string
	}{
		{"", false, ""},
		{"stdout", true, ""},
		{"otlp", true, ""},
		{"zipkin", false, `FKROLLOUT_TRACE="zipkin": want otlp or stdout`},
	} {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv(EnvTrace, tc.value)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			var opts client.Options
			flush, err := cliTracing(context.Background(), &opts)
			if tc.err != "" {
				require.Error(t, err)
				assert.Equal(t, exitUsage, exitCode(err))
				assert.ErrorContains(t, err, tc.err)
				assert.Empty(t, opts.Interceptors)
				return
			}
			require.NoError(t, err)
			defer flush()
			if tc.on {
				assert.Len(t, opts.Interceptors, 1)
			} else {
				assert.Empty(t, opts.Interceptors)
			}
		})
	}
}

// With FKROLLOUT_TRACE set, a decide from the CLI starts the trace: the
// worker's span for the decide Update descends from a span it did not
// start: the CLI's, carried in the Update's header.
func TestCLIDecideStartsTheTrace(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	icpt, err := opentelemetry.NewTracingInterceptor(opentelemetry.TracerOptions{Tracer: tp.Tracer("worker")})
	require.NoError(t, err)
	wc, err := client.Dial(client.Options{HostPort: srv.FrontendHostPort(), Namespace: "default", Interceptors: []interceptor.ClientInterceptor{icpt}})
	require.NoError(t, err)
	defer wc.Close()
	tq := "cli-trace"
	w := worker.New(wc, tq, worker.Options{})
	workflows.Register(w)
	registerStubs(w, 2, devPolicy)
	require.NoError(t, w.Start())
	defer w.Stop()

	planFile := filepath.Join(t.TempDir(), "plan.sql")
	require.NoError(t, os.WriteFile(planFile, []byte("ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;"), 0o600))
	code, _, errOut := starterRun(t, append([]string{"start", "--plan", planFile, "--id", "cli-traced", "--requester", "rita",
		"--approvers", "alice,bob", "--environments", "staging", "--task-queue", tq}, skipAll...)...)
	require.Equal(t, 0, code, errOut)
	require.Eventually(t, func() bool {
		_, out, _ := starterRun(t, "status", "cli-traced")
		return strings.Contains(out, "open gate staging/remediation/1")
	}, 30*time.Second, 200*time.Millisecond)

	t.Setenv(EnvTrace, "stdout")
	code, out, errOut := starterRun(t, "remediate", "cli-traced", "staging/remediation/1", "delete", "--actor", "alice")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "decided: delete")

	var handle []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "HandleUpdate:"+approval.UpdateDecide {
			handle = append(handle, s)
		}
	}
	require.Len(t, handle, 1)
	// The handler's parent chain leaves the worker: the CLI's Update span.
	byID := map[trace.SpanID]bool{}
	for _, s := range exp.GetSpans() {
		byID[s.SpanContext.SpanID()] = true
	}
	root := handle[0]
	for root.Parent.IsValid() && byID[root.Parent.SpanID()] {
		for _, s := range exp.GetSpans() {
			if s.SpanContext.SpanID() == root.Parent.SpanID() {
				root = s
			}
		}
	}
	assert.True(t, root.Parent.IsValid(), "the decide's trace was started outside the worker")
	assert.True(t, root.Parent.IsRemote())
}
