package monitor

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Provides is what a configured source can measure, read from its
// configuration alone (no connection): a postgres source measures latency,
// throughput and the error rate, and FK violations only with a log_path; a
// prometheus source measures the metrics it has queries for; an http
// source the smoke checks.
func (sc SourceConfig) Provides() []string {
	switch sc.Kind {
	case KindPostgres:
		m := []string{MetricLatencyMS, MetricThroughput, MetricErrorRatePct}
		if sc.LogPath != "" {
			m = append(m, MetricFKViolations)
		}
		return m
	case KindPrometheus:
		return slices.Sorted(maps.Keys(sc.Queries))
	case KindHTTP:
		return []string{MetricSmokeFailures}
	}
	return nil
}

// Coverage says, for each rule, which of the chosen sources measure its
// metric (an empty list: none, the rule can only be inconclusive). names
// empty means every source of env.
func (c Config) Coverage(env string, names []string, rules []Rule) map[string][]string {
	if len(names) == 0 {
		names = c.DefaultSources(env)
	}
	out := map[string][]string{}
	for _, r := range rules {
		out[r.Name] = []string{}
		for _, n := range names {
			if sc, ok := c.Sources[n]; ok && slices.Contains(sc.Provides(), r.Metric) {
				out[r.Name] = append(out[r.Name], n)
			}
		}
	}
	return out
}

// RequiredUncovered names every rule this worker requires (RequireRules)
// that the watch could not evaluate: not in the matrix, or no chosen
// source measures it. Each problem says how to fix it.
func (c Config) RequiredUncovered(env string, names []string, rules []Rule) []string {
	cov := c.Coverage(env, names, rules)
	chosen := names
	if len(chosen) == 0 {
		chosen = c.DefaultSources(env)
	}
	var probs []string
	for _, req := range c.RequireRules {
		req = strings.TrimSpace(req)
		var matched []Rule
		for _, r := range rules {
			if r.Name == req || r.Metric == req {
				matched = append(matched, r)
			}
		}
		if len(matched) == 0 {
			probs = append(probs, fmt.Sprintf("monitor.require_rules: %q is required by this worker but no rule of the rollout's matrix is named so or reads that metric", req))
			continue
		}
		for _, r := range matched {
			if len(cov[r.Name]) > 0 {
				continue
			}
			probs = append(probs, fmt.Sprintf("monitor.require_rules: rule %s (%s) is required by this worker, but none of the sources watching %s (%s) measures %s: %s",
				r.Name, r.Metric, env, orNone(chosen), r.Metric, howToMeasure(r.Metric)))
		}
	}
	return probs
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// howToMeasure is the fix for a metric no source measures.
func howToMeasure(metric string) string {
	switch metric {
	case MetricFKViolations:
		return "give a postgres source log_path (the server's csvlog or jsonlog) or a prometheus source a fk_violations query counting the application's SQLSTATE 23503 errors per interval"
	case MetricSmokeFailures:
		return "configure smoke_checks for the environment or an http source"
	case MetricLatencyMS, MetricErrorRatePct, MetricThroughput:
		return "configure a postgres source for the environment or a prometheus query named " + metric
	}
	return "configure a prometheus source with a query named " + metric
}
