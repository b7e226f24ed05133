package watch

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fkrollout/fkrollout/internal/monitor"
)

func TestDigestTextNamesEveryRuleWithItsSource(t *testing.T) {
	end := time.Date(2026, 3, 6, 2, 0, 0, 0, time.UTC)
	rules := []monitor.RuleStatus{
		{Rule: monitor.RuleLatency, Metric: monitor.MetricLatencyMS, Action: monitor.ActionRollback, Sources: []string{"pg"}, Series: "latency_ms@pg/public.orders",
			Value: 1.5, Threshold: 20, Op: ">", Unit: "ms", State: monitor.RuleOK, BaselineFrom: "mean of the same time on 7 of the 7 previous days"},
		{Rule: monitor.RuleFKViolations, Metric: monitor.MetricFKViolations, Action: monitor.ActionInvestigate, State: monitor.RuleInconclusive,
			Reason: "no configured source measures fk_violations"},
	}
	got := DigestText("production", 2, 576, end, rules)
	assert.Equal(t, "monitor digest, day 2 of the watch of production: 576 checks so far, the watch ends 2026-03-06T02:00:00Z\n"+
		"• latency-degradation [pg] ok: latency_ms@pg/public.orders 1.5ms (rollback > 20ms), baseline: mean of the same time on 7 of the 7 previous days\n"+
		"• fk-violations [no source] inconclusive — no configured source measures fk_violations", got)
}
