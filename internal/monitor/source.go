package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Source measures some metrics. Cumulative sources (pg_stat_statements,
// pg_stat_database, a server log) report deltas: Collect returns a new
// cursor that the caller keeps (in the watcher's heartbeat) and passes to
// the next call. A nil cursor primes the source: it returns the cursor and
// no values.
type Source interface {
	// Name is the configured source name.
	Name() string
	// Provides lists the metric names this source measures, so a check
	// knows what is missing when a source returns nothing.
	Provides() []string
	// Collect measures since cursor.
	Collect(ctx context.Context, cursor json.RawMessage) (Reading, error)
}

// Reading is one source's measurement.
type Reading struct {
	Values  map[string]float64 `json:"values,omitempty"`
	Missing map[string]string  `json:"missing,omitempty"`
	Notes   []string           `json:"notes,omitempty"`
	Cursor  json.RawMessage    `json:"cursor,omitempty"`
	// Baseline and BaselineFrom are time-matched baselines by series
	// (Sample.Baseline).
	Baseline     map[string]float64 `json:"baseline,omitempty"`
	BaselineFrom map[string]string  `json:"baseline_from,omitempty"`
}

// Cursors are the per-source cursors, by source name.
type Cursors map[string]json.RawMessage

// Collect asks every source and merges the readings into one sample. A
// source that fails marks all its metrics missing with the error (so the
// check is inconclusive, not silently passed) and keeps its old cursor.
func Collect(ctx context.Context, sources []Source, cursors Cursors, at time.Time) (Sample, Cursors) {
	s := Sample{At: at, Values: map[string]float64{}, Missing: map[string]string{}}
	next := Cursors{}
	for _, src := range sources {
		r, err := src.Collect(ctx, cursors[src.Name()])
		if err != nil {
			for _, m := range src.Provides() {
				s.Missing[m+"@"+src.Name()] = "source error: " + err.Error()
			}
			if c, ok := cursors[src.Name()]; ok {
				next[src.Name()] = c
			}
			continue
		}
		maps.Copy(s.Values, r.Values)
		maps.Copy(s.Missing, r.Missing)
		if len(r.Baseline) > 0 {
			if s.Baseline == nil {
				s.Baseline, s.BaselineFrom = map[string]float64{}, map[string]string{}
			}
			maps.Copy(s.Baseline, r.Baseline)
			maps.Copy(s.BaselineFrom, r.BaselineFrom)
		}
		s.Notes = append(s.Notes, r.Notes...)
		if r.Cursor != nil {
			next[src.Name()] = r.Cursor
		}
	}
	if len(s.Missing) == 0 {
		s.Missing = nil
	}
	return s, next
}

// Prime establishes the cursors of cumulative sources (values discarded).
func Prime(ctx context.Context, sources []Source) Cursors {
	_, c := Collect(ctx, sources, nil, time.Time{})
	return c
}

// ToBaseline turns a sample into a baseline.
func ToBaseline(s Sample, period time.Duration) Baseline {
	return Baseline{CapturedAt: s.At, Period: Duration(period), Values: s.Values, Missing: s.Missing}
}

// Config is the monitor part of the worker configuration: the named
// sources a rollout may choose (MonitorRequest.Sources), and defaults.
// It holds no secret: a postgres source names an environment whose DSN
// the worker resolves.
//
//	monitor:
//	  sources:
//	    production-db:
//	      kind: postgres
//	      environment: production
//	      log_path: /var/log/postgresql/postgresql-*.json
//	      log_format: jsonlog
//	    app:
//	      kind: prometheus
//	      url: http://prometheus:9090
//	      queries:
//	        latency_ms: 1000 * histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))
//	        error_rate_pct: 100 * sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
//	    smoke:
//	      kind: http
//	      checks:
//	        - {name: health, url: https://apms.example.com/health, expect_status: 200}
//	        - {name: invalid-data-400, method: POST, url: https://apms.example.com/api/v1/workflow-instances,
//	           body: '{"configVersionId":"invalid"}', headers: {Content-Type: application/json}, expect_status: 400}
type Config struct {
	Sources map[string]SourceConfig `yaml:"sources" json:"sources"`
	// RequireRules names rules (or the metrics they read: "fk_violations")
	// that a watch on this worker must be able to evaluate: a rollout
	// whose chosen sources measure none of them is refused at start,
	// before anything changes (RequiredUncovered).
	RequireRules []string `yaml:"require_rules" json:"require_rules,omitempty"`
}

// DefaultSources are the names of the sources of an environment, sorted:
// what a rollout that chooses no sources is watched with.
func (c Config) DefaultSources(env string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(c.Sources)) {
		if c.Sources[name].Environment == env {
			out = append(out, name)
		}
	}
	return out
}

// Source kinds.
const (
	KindPostgres   = "postgres"
	KindPrometheus = "prometheus"
	KindHTTP       = "http"
)

// SourceConfig configures one source; fields by kind.
type SourceConfig struct {
	Kind string `yaml:"kind" json:"kind"`

	// Environment is the worker environment the source watches: for
	// postgres, the one whose DSN it uses (required); for every kind, a
	// rollout that names no sources watches its environment with all the
	// sources of that environment (DefaultSources).
	Environment string `yaml:"environment" json:"environment,omitempty"`
	// Tables tracked besides the rollout's own ("schema.table").
	Tables []string `yaml:"tables" json:"tables,omitempty"`
	// MinCalls below which an interval has no latency data for a table
	// (default 1).
	MinCalls int64 `yaml:"min_calls" json:"min_calls,omitempty"`
	// LogPath is the server log (csvlog or jsonlog), a file or a glob
	// whose newest match is read; empty: FK violations are not measured by
	// this source.
	LogPath string `yaml:"log_path" json:"log_path,omitempty"`
	// LogFormat is "csvlog" or "jsonlog" (default: by file extension).
	LogFormat string `yaml:"log_format" json:"log_format,omitempty"`
	// Probes are statements timed in rolled-back transactions.
	Probes []Probe `yaml:"probes" json:"probes,omitempty"`

	// prometheus: URL of the server and PromQL per metric name.
	URL     string            `yaml:"url" json:"url,omitempty"`
	Queries map[string]string `yaml:"queries" json:"queries,omitempty"`
	// BaselineDays, when set, gives every check a baseline matched in
	// time: the mean of the same queries at the same time of day on that
	// many previous days (offset queries), instead of the baseline
	// measured before the deploy (in the quiet maintenance window).
	BaselineDays int `yaml:"baseline_days" json:"baseline_days,omitempty"`

	// http: the smoke checks.
	Checks []HTTPCheck `yaml:"checks" json:"checks,omitempty"`

	// Timeout of one collection (default 10s).
	Timeout string `yaml:"timeout" json:"timeout,omitempty"`
}

// Validate names every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Sources)) {
		sc := c.Sources[name]
		bad := func(f string, a ...any) {
			errs = append(errs, fmt.Errorf("monitor source %q: "+f, append([]any{name}, a...)...))
		}
		if strings.ContainsAny(name, "@ ") {
			bad("name must not contain '@' or spaces")
		}
		switch sc.Kind {
		case KindPostgres:
			if sc.Environment == "" {
				bad("postgres source needs environment")
			}
			if sc.LogFormat != "" && sc.LogFormat != "csvlog" && sc.LogFormat != "jsonlog" {
				bad("log_format %q (want csvlog or jsonlog)", sc.LogFormat)
			}
		case KindPrometheus:
			if sc.URL == "" || len(sc.Queries) == 0 {
				bad("prometheus source needs url and queries")
			}
			if sc.BaselineDays < 0 || sc.BaselineDays > MaxBaselineDays {
				bad("baseline_days %d (want 0 to %d)", sc.BaselineDays, MaxBaselineDays)
			}
		case KindHTTP:
			if len(sc.Checks) == 0 {
				bad("http source needs checks")
			}
			for i, ch := range sc.Checks {
				if ch.Name == "" || ch.URL == "" {
					bad("checks[%d] needs name and url", i)
				}
			}
		default:
			bad("kind %q (want postgres, prometheus or http)", sc.Kind)
		}
		if sc.Timeout != "" {
			if _, err := time.ParseDuration(sc.Timeout); err != nil {
				bad("timeout %q is not a duration", sc.Timeout)
			}
		}
	}
	for i, r := range c.RequireRules {
		if strings.TrimSpace(r) == "" {
			errs = append(errs, fmt.Errorf("monitor.require_rules[%d] is empty", i))
		}
	}
	return errors.Join(errs...)
}

// MaxBaselineDays bounds baseline_days: four weeks of offset queries per
// check is already more than a weekly pattern needs.
const MaxBaselineDays = 28

// CollectTimeout is how long one collection may take (default 10s).
func (sc SourceConfig) CollectTimeout() time.Duration {
	if d, err := time.ParseDuration(sc.Timeout); err == nil && d > 0 {
		return d
	}
	return 10 * time.Second
}

// HTTPCheck is one smoke check: a request and the status it must answer
// with. It covers a health check (GET /health → 200) and an
// "invalid data returns 400" check (POST with a bad reference → 400).
type HTTPCheck struct {
	Name         string            `yaml:"name" json:"name"`
	Method       string            `yaml:"method" json:"method,omitempty"`
	URL          string            `yaml:"url" json:"url"`
	Body         string            `yaml:"body" json:"body,omitempty"`
	Headers      map[string]string `yaml:"headers" json:"headers,omitempty"`
	ExpectStatus int               `yaml:"expect_status" json:"expect_status,omitempty"`
	Timeout      string            `yaml:"timeout" json:"timeout,omitempty"`
}

// Probe is one timed statement.
type Probe struct {
	Name string `yaml:"name" json:"name"`
	SQL  string `yaml:"sql" json:"sql"`
}

// PlanTables returns every table a plan's constraints touch (both sides),
// the tables the monitor tracks by default.
func PlanTables(p plan.Plan) []plan.TableName {
	var ts []plan.TableName
	for _, fk := range p.ForeignKeys {
		ts = append(ts, fk.Table, fk.RefTable)
	}
	return plan.UniqueTables(ts)
}
