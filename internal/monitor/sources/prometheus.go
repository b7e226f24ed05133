package sources

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fkrollout/fkrollout/internal/monitor"
)

// PromSource evaluates PromQL instant queries over Prometheus' HTTP API
// (/api/v1/query), one per metric name, the way Argo Rollouts analyses do.
// An empty result, or NaN (a rate over no traffic), is no data: the check
// is inconclusive, never a pass.
type PromSource struct {
	SourceName string
	API        promv1.API
	// Queries by metric name (latency_ms, error_rate_pct, ...).
	Queries map[string]string
	Timeout time.Duration
	Now     func() time.Time
	// BaselineDays, when set, also evaluates every query at the same time
	// on that many previous days and gives each series the mean as its
	// baseline (Reading.Baseline): daytime traffic is compared with
	// daytime traffic, not with the maintenance window.
	BaselineDays int
}

// NewPromSource connects to a Prometheus server.
func NewPromSource(name, url string, queries map[string]string, timeout time.Duration) (*PromSource, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prometheus source %s: %w", name, err)
	}
	return &PromSource{SourceName: name, API: promv1.NewAPI(c), Queries: queries, Timeout: timeout}, nil
}

// Name implements monitor.Source.
func (p *PromSource) Name() string { return p.SourceName }

// Provides implements monitor.Source.
func (p *PromSource) Provides() []string { return slices.Sorted(maps.Keys(p.Queries)) }

// Collect implements monitor.Source. Prometheus queries carry their own windows
// (rate(...[5m])), so the source keeps no cursor.
func (p *PromSource) Collect(ctx context.Context, _ json.RawMessage) (monitor.Reading, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	r := monitor.Reading{Values: map[string]float64{}, Missing: map[string]string{}}
	at := now()
	for _, metric := range p.Provides() {
		q := p.Queries[metric]
		qctx := ctx
		if p.Timeout > 0 {
			var cancel context.CancelFunc
			qctx, cancel = context.WithTimeout(ctx, p.Timeout)
			defer cancel()
		}
		base := metric + "@" + p.SourceName
		v, warnings, _, err := p.API.Query(qctx, q, at)
		if err != nil {
			r.Missing[base] = fmt.Sprintf("query %q failed: %v", q, err)
			continue
		}
		for _, w := range warnings {
			r.Notes = append(r.Notes, fmt.Sprintf("prometheus %s %s: %s", p.SourceName, metric, w))
		}
		got := 0
		add := func(series string, f float64) {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				r.Missing[series] = fmt.Sprintf("query %q returned %v (no traffic?)", q, f)
				return
			}
			r.Values[series] = f
			got++
		}
		if !eachSeries(v, base, add) {
			r.Missing[base] = fmt.Sprintf("query %q returned a %s, want an instant vector or scalar", q, v.Type())
			continue
		}
		if got == 0 && !hasPrefixKey(r.Missing, base) {
			r.Missing[base] = fmt.Sprintf("query %q returned no data", q)
		}
		if p.BaselineDays > 0 && got > 0 {
			p.sameTimeBaseline(ctx, &r, metric, q, at)
		}
	}
	return r, nil
}

// sameTimeBaseline evaluates q at the same time on each of the previous
// BaselineDays days and records the mean per series. A day without data
// (no traffic, retention) is left out and the text says how many counted;
// a series with no day at all gets no time-matched baseline, and the rule
// falls back to the baseline captured before the deploy.
func (p *PromSource) sameTimeBaseline(ctx context.Context, r *monitor.Reading, metric, q string, at time.Time) {
	sums, counts := map[string]float64{}, map[string]int{}
	for day := 1; day <= p.BaselineDays; day++ {
		qctx := ctx
		var cancel context.CancelFunc = func() {}
		if p.Timeout > 0 {
			qctx, cancel = context.WithTimeout(ctx, p.Timeout)
		}
		v, _, _, err := p.API.Query(qctx, q, at.Add(-time.Duration(day)*24*time.Hour))
		cancel()
		if err != nil {
			continue
		}
		add := func(series string, f float64) {
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return
			}
			sums[series] += f
			counts[series]++
		}
		base := metric + "@" + p.SourceName
		eachSeries(v, base, add)
	}
	for series, n := range counts {
		if _, ok := r.Values[series]; !ok {
			continue
		}
		if r.Baseline == nil {
			r.Baseline, r.BaselineFrom = map[string]float64{}, map[string]string{}
		}
		r.Baseline[series] = sums[series] / float64(n)
		r.BaselineFrom[series] = fmt.Sprintf("mean of the same time on %d of the %d previous days", n, p.BaselineDays)
	}
}

func hasPrefixKey(m map[string]string, prefix string) bool {
	for k := range m {
		if k == prefix || strings.HasPrefix(k, prefix+"/") {
			return true
		}
	}
	return false
}

// labelString renders labels sorted, {a="1",b="2"} without the name.
func labelString(m model.Metric) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, string(k))
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%q", k, string(m[model.LabelName(k)]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// eachSeries hands every series of an instant query's answer to add, named
// base or base/labels; false when the answer is neither vector nor scalar.
func eachSeries(v model.Value, base string, add func(series string, value float64)) bool {
	switch val := v.(type) {
	case model.Vector:
		for _, s := range val {
			series := base
			if len(s.Metric) > 0 {
				series += "/" + labelString(s.Metric)
			}
			add(series, float64(s.Value))
		}
	case *model.Scalar:
		add(base, float64(val.Value))
	default:
		return false
	}
	return true
}
