package sources

import (
	"github.com/fkrollout/fkrollout/internal/monitor"

	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startPrometheus runs a real Prometheus (Debian's package: apt-get install
// prometheus) scraping target every second, on a free port with a
// temporary storage directory, and returns its URL once the target is up.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin := os.Getenv("FKROLLOUT_PROMETHEUS_BIN")
	if bin == "" {
		bin = "/usr/bin/prometheus"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prometheus not found at %s (CI must apt-get install prometheus): %v", bin, err)
		}
		t.Skipf("prometheus not installed at %s (apt-get install prometheus)", bin)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ['%s']
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	url := "http://" + addr
	src, err := NewPromSource("probe", url, map[string]string{"up": `up{job="app"}`}, 2*time.Second)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		r, err := src.Collect(context.Background(), nil)
		return err == nil && len(r.Values) == 1 && r.Values[firstKey(r.Values)] == 1
	}, 30*time.Second, 200*time.Millisecond, "prometheus never scraped the exporter; output:\n%s", out)
	return url
}

func firstKey(m map[string]float64) string {
	for k := range m {
		return k
	}
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// exporter is a small application exposing request counters by status code.
type exporter struct {
	requests *prometheus.CounterVec
	// dbErrors is the application's count of database errors by SQLSTATE.
	dbErrors *prometheus.CounterVec
	srv      *httptest.Server
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	errPerS  int
}

func newExporter(t *testing.T) *exporter {
	reg := prometheus.NewRegistry()
	e := &exporter{stop: make(chan struct{}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_requests_total", Help: "requests by code"}, []string{"code"})}
	e.dbErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "app_db_errors_total", Help: "database errors by SQLSTATE"}, []string{"sqlstate"})
	e.dbErrors.WithLabelValues("23503")
	reg.MustRegister(e.requests, e.dbErrors)
	e.requests.WithLabelValues("200")
	e.requests.WithLabelValues("500") // exists at 0 so the error rate is 0, not "no data"
	e.srv = httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Traffic: 100 good requests a second, errPerS failures.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-tick.C:
				e.requests.WithLabelValues("200").Add(10)
				e.mu.Lock()
				n := e.errPerS
				e.mu.Unlock()
				e.requests.WithLabelValues("500").Add(float64(n) / 10)
			}
		}
	}()
	t.Cleanup(func() { close(e.stop); e.wg.Wait(); e.srv.Close() })
	return e
}

func (e *exporter) setErrors(perS int) { e.mu.Lock(); e.errPerS = perS; e.mu.Unlock() }

func TestPrometheusSourceErrorRateBreachAndNoData(t *testing.T) {
	exp := newExporter(t)
	url := startPrometheus(t, exp.srv.Listener.Addr().String())
	const errRate = `100 * sum(rate(app_requests_total{code=~"5.."}[4s])) / sum(rate(app_requests_total[4s]))`
	src, err := NewPromSource("app", url, map[string]string{
		monitor.MetricErrorRatePct: errRate,
		// A latency histogram the application does not export: no data.
		monitor.MetricLatencyMS: `1000 * histogram_quantile(0.95, sum(rate(app_request_duration_seconds_bucket[4s])) by (le))`,
	}, 5*time.Second)
	require.NoError(t, err)
	ctx := context.Background()
	series := monitor.MetricErrorRatePct + "@app"

	var r monitor.Reading
	require.Eventually(t, func() bool {
		r, err = src.Collect(ctx, nil)
		require.NoError(t, err)
		_, ok := r.Values[series]
		return ok
	}, 20*time.Second, 250*time.Millisecond, "no error rate yet")
	assert.InDelta(t, 0, r.Values[series], 0.01)
	assert.Contains(t, r.Missing[monitor.MetricLatencyMS+"@app"], "no data", "an empty result is no data, not zero")
	base := monitor.Baseline{CapturedAt: time.Now(), Values: r.Values}

	exp.setErrors(30) // 30 failures for 100 successes: ~23 %
	require.Eventually(t, func() bool {
		r, err = src.Collect(ctx, nil)
		require.NoError(t, err)
		return r.Values[series] > 20
	}, 20*time.Second, 250*time.Millisecond, "error rate never rose: %v", r.Values)

	ev := monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{Persist: 1}), InconclusiveLimit: 2}
	d, st := ev.Evaluate(monitor.State{}, base, monitor.Sample{At: time.Now(), Values: r.Values, Missing: r.Missing})
	assert.Equal(t, monitor.ActionRollback, d.Action, d.Reason)
	assert.Equal(t, monitor.RuleErrorRate, d.Rule)
	assert.Greater(t, d.Figures[monitor.RuleErrorRate], 15.0)
	assert.Contains(t, d.Reason, "error_rate_pct@app rose by")

	// The latency query alone, with no data: inconclusive, then the gate;
	// never a rollback, never a pass.
	lat, err := NewPromSource("app", url, map[string]string{monitor.MetricLatencyMS: src.Queries[monitor.MetricLatencyMS]}, 5*time.Second)
	require.NoError(t, err)
	ev = monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{Persist: 1})[:1], InconclusiveLimit: 2}
	st = monitor.State{}
	var actions []monitor.Action
	for i := 0; i < 2; i++ {
		r, err := lat.Collect(ctx, nil)
		require.NoError(t, err)
		d, st = ev.Evaluate(st, monitor.Baseline{Values: map[string]float64{monitor.MetricLatencyMS + "@app": 10}}, monitor.Sample{At: time.Now(), Values: r.Values, Missing: r.Missing})
		actions = append(actions, d.Action)
		assert.True(t, d.Inconclusive)
	}
	assert.Equal(t, []monitor.Action{monitor.ActionContinue, monitor.ActionInconclusive}, actions)
	assert.Contains(t, d.Reason, "returned no data")

	// A server that does not answer is a source error: missing, not a pass.
	down, err := NewPromSource("down", "http://"+freeAddr(t), map[string]string{monitor.MetricErrorRatePct: errRate}, time.Second)
	require.NoError(t, err)
	s, _ := monitor.Collect(ctx, []monitor.Source{down}, nil, time.Now())
	assert.Contains(t, s.Missing[monitor.MetricErrorRatePct+"@down"], "failed")
}

func TestHTTPSourceSmokeChecks(t *testing.T) {
	var healthy sync.Mutex
	up := true
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health":
			healthy.Lock()
			defer healthy.Unlock()
			if up {
				w.WriteHeader(http.StatusOK)
			} else {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		case r.Method == http.MethodPost && r.URL.Path == "/api/v1/workflow-instances":
			var b bytes.Buffer
			_, _ = b.ReadFrom(r.Body)
			if r.Header.Get("Content-Type") == "application/json" && bytes.Contains(b.Bytes(), []byte("invalid-config-id")) {
				http.Error(w, "configVersionId does not exist", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusCreated)
		default:
			http.NotFound(w, r)
		}
	}))
	defer app.Close()
	src := &HTTPSource{SourceName: "smoke", Checks: []monitor.HTTPCheck{
		{Name: "health", URL: app.URL + "/health", ExpectStatus: 200},
		{Name: "invalid-data-400", Method: "POST", URL: app.URL + "/api/v1/workflow-instances",
			Body: `{"workspaceId":"w","configVersionId":"invalid-config-id"}`, Headers: map[string]string{"Content-Type": "application/json"}, ExpectStatus: 400},
	}}
	r, err := src.Collect(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, 0.0, r.Values[monitor.MetricSmokeFailures+"@smoke"], "notes: %v", r.Notes)

	healthy.Lock()
	up = false
	healthy.Unlock()
	r, err = src.Collect(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, 1.0, r.Values[monitor.MetricSmokeFailures+"@smoke"])
	assert.Equal(t, 1.0, r.Values["smoke_failed@smoke/health"])
	require.Len(t, r.Notes, 1)
	assert.Contains(t, r.Notes[0], "answered 503, want 200")

	app.Close() // unreachable: both fail (the application is down)
	r, err = src.Collect(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, 2.0, r.Values[monitor.MetricSmokeFailures+"@smoke"])
}

// A prometheus source with baseline_days compares each check with the same
// time on previous days (offset queries), and a fk_violations query over
// the application's own SQLSTATE 23503 counter feeds the FK violations
// rule: the rule reports the source it came from.
func TestPrometheusSameTimeBaselineAndFKViolations(t *testing.T) {
	exp := newExporter(t)
	url := startPrometheus(t, exp.srv.Listener.Addr().String())
	// time() is the evaluation time itself: the query at the same time on
	// previous days answers exactly that time minus whole days.
	src, err := NewPromSource("app", url, map[string]string{
		monitor.MetricLatencyMS:    `time()`,
		monitor.MetricFKViolations: `sum(increase(app_db_errors_total{sqlstate="23503"}[5s]))`,
	}, 5*time.Second)
	require.NoError(t, err)
	src.BaselineDays = 3
	ctx := context.Background()
	lat, fk := monitor.MetricLatencyMS+"@app", monitor.MetricFKViolations+"@app"

	exp.dbErrors.WithLabelValues("23503").Add(4)
	var r monitor.Reading
	var at time.Time
	require.Eventually(t, func() bool {
		at = time.Now().Truncate(time.Second)
		src.Now = func() time.Time { return at }
		r, err = src.Collect(ctx, nil)
		require.NoError(t, err)
		return r.Values[fk] >= 1
	}, 20*time.Second, 250*time.Millisecond, "the 23503 counter never showed: %v %v", r.Values, r.Missing)

	day := float64(24 * 60 * 60)
	now := float64(at.Unix())
	assert.InDelta(t, now, r.Values[lat], 0.01)
	assert.InDelta(t, now-2*day, r.Baseline[lat], 0.01, "mean of now-1d, now-2d, now-3d")
	assert.Equal(t, "mean of the same time on 3 of the 3 previous days", r.BaselineFrom[lat])

	// The evaluator prefers the time-matched baseline to the one captured
	// before the deploy, and reports where each rule's figure came from.
	s, _ := monitor.Collect(ctx, []monitor.Source{src}, monitor.Cursors{}, at)
	ev := monitor.Evaluator{Rules: monitor.DefaultMatrix(monitor.Thresholds{LatencyIncreaseMS: 3 * day, Persist: 1}), InconclusiveLimit: 3}
	d, _ := ev.Evaluate(monitor.State{}, monitor.Baseline{Values: map[string]float64{lat: 0}}, s)
	byRule := map[string]monitor.RuleStatus{}
	for _, rs := range d.Rules {
		byRule[rs.Rule] = rs
	}
	assert.InDelta(t, 2*day, byRule[monitor.RuleLatency].Value, 1, "increase over the same time two days ago on average, not over the captured 0")
	assert.Equal(t, monitor.RuleOK, byRule[monitor.RuleLatency].State)
	assert.Contains(t, byRule[monitor.RuleLatency].BaselineFrom, "previous days")
	assert.Equal(t, []string{"app"}, byRule[monitor.RuleFKViolations].Sources)
	assert.Equal(t, monitor.RuleBreach, byRule[monitor.RuleFKViolations].State, "4 violations > 1 an hour")
	assert.Equal(t, monitor.ActionInvestigate, d.Action)
	assert.Equal(t, monitor.RuleInconclusive, byRule[monitor.RuleErrorRate].State, "no source measures the error rate")
	assert.Empty(t, byRule[monitor.RuleErrorRate].Sources)
}
