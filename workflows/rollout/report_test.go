package rollout

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

func (h *harness) report() string {
	v, err := h.env.QueryWorkflow(QueryReport)
	require.NoError(h.t, err)
	var md string
	require.NoError(h.t, v.Get(&md))
	return md
}

// The report of a whole rollout: staging with orphans fixed by delete, a
// two-person promotion, production in its window.
func TestReportOfCompletedRollout(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 3}
	h.fake.orphans["production"] = map[string]int64{}
	var midRun string
	h.env.RegisterDelayedCallback(func() { midRun = h.report() }, 2*time.Hour)
	h.drive()
	st, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, StateCompleted, st.State)

	// Mid-run the report is available and says where the rollout is.
	assert.Contains(t, midRun, "| production | maintenance-window | ⏳ waiting-for-window |", "the open phase while running")
	assert.Contains(t, midRun, "**Now:** phase")

	require.Len(t, h.fake.reports, 1, "published once, at the end")
	pub := h.fake.reports[0]
	assert.Equal(t, "rollout-test-1", pub.RolloutID)
	assert.Equal(t, string(StateCompleted), pub.State)
	assert.Equal(t, "/reports/rollout-test-1.md", st.ReportPath)
	assert.Equal(t, notify.MessageRef{Channel: "C1", TS: "1"}, pub.Thread, "posted in the rollout's thread")
	md := h.report()
	assert.Equal(t, pub.Markdown, md, "query and published report are the same text")

	for _, want := range []string{
		"# ✅ FK Rollout demo — COMPLETED",
		"**Environments:** staging → production",
		"| staging | audit | ✅ done |",
		"| production | maintenance-window | ✅ done | 15h 40m |", // promoted 10:20, window opens 02:00
		"| staging | remediation | ✅ done |",
		"### Orphan audit: staging",
		"| fk_stages_instance orphans | 3 | 0 | ✅ FIXED (delete: 3 quarantined) |",
		"| No row lost | ✅ KEPT | 3 rows changed by remediation, 3 copied to fkrollout.quarantine first |",
		"| Referential integrity (production) | ✅ ENFORCED | 3/3 constraints validated, 0 NOT VALID as debt |",
		"| staging/remediation/1 | delete | alice@example.com | test | looks right |",
		"| production/promotion/2 | approve | bob@example.com | test | agreed |",
		"| FK Constraints Validated (production) | every planned constraint VALIDATED | 3 | 3 | ✅ PASS (100%) |",
		"| Orphaned Records (production) | no orphan left after remediation | 0 | 0 | ✅ PASS |",
		"| Smoke Checks (production) | status, body and log assertions hold; cleanup done | 1/1 | 1/1 | ✅ PASS |",
		"*Status: COMPLETED*",
	} {
		assert.Contains(t, md, want)
	}
	assert.NotContains(t, md, "## Rollback")
	assert.NotContains(t, md, "## Performance", "no perf phase in this input")
}

func TestReportOfMonitorRollbackNamesTheRule(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	withMonitor(t, h, slowFrom(10), false)
	h.drive()
	st, err := h.run(monitorInput())
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, st.State)
	require.NotNil(t, st.Rollback)
	assert.Equal(t, "monitor", st.Rollback.Trigger)
	assert.Equal(t, monitor.RuleLatency, st.Rollback.Rule)
	assert.Len(t, st.Rollback.Dropped, 6)

	require.Len(t, h.fake.reports, 1)
	md := h.fake.reports[0].Markdown
	for _, want := range []string{
		"# ↩️ FK Rollout demo — ROLLED BACK",
		"## Rollback",
		"**Trigger:** monitor",
		"**Rule fired:** " + monitor.RuleLatency,
		"| production | rollback | ↩️ rolled back |",
		"| Production Monitor (",
		"| rollback (" + monitor.RuleLatency + ") | ❌ FAIL |",
		"production:fk_instances_workspace",
	} {
		assert.Contains(t, md, want)
	}
	assert.Contains(t, md, "| 25 ", "the figure that breached is in the report")
}

func TestReportOfManualRollbackAndAbort(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput { return nil })
	h.fake.orphans["staging"] = map[string]int64{"fk_stages_instance": 1}
	h.env.RegisterDelayedCallback(func() {
		h.control(approval.UpdateAbort, approval.ControlInput{Actor: requester, Reason: "wrong plan", Rollback: true})
	}, time.Hour)
	st, err := h.run(testInput())
	require.NoError(t, err)
	require.Equal(t, StateRolledBack, st.State)
	md := h.fake.reports[0].Markdown
	assert.Contains(t, md, "**Rule fired:** abort with rollback")
	assert.Contains(t, md, "**Reason:** wrong plan")
	assert.Contains(t, md, "| fk_stages_instance orphans | 1 | 1 | ❌ ORPHANS |")
	assert.Contains(t, md, "| Referential integrity (production) | ⏳ IN PROGRESS | 0/3")
}

func TestReportOfFailedRolloutIsPublished(t *testing.T) {
	h := newHarness(t, approveAll)
	in := testInput()
	in.Plan = "not a plan"
	_, err := h.run(in)
	require.Error(t, err)
	require.Len(t, h.fake.reports, 1, "a failed rollout still gets its report")
	md := h.fake.reports[0].Markdown
	assert.Contains(t, md, "# ❌ FK Rollout — FAILED")
	assert.Contains(t, md, "**Error:**")
	assert.Contains(t, md, "| — | parse-plan | ❌ failed |")
}

// Report as a pure function of a status: the rows that depend on figures
// the fake engine does not produce.
func TestReportRendersFigures(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	base := func() *Status {
		return &Status{RolloutID: "r1", Requester: requester, State: StateCompletedWithDebt, PlanName: "p",
			EnvironmentOrder: []string{"staging"}, StartedAt: t0, UpdatedAt: t0.Add(90 * time.Second),
			Constraints: []ConstraintStatus{
				{Name: "fk_a", Environments: map[string]ConstraintEnvState{"staging": {State: CTested}}},
				{Name: "fk_b", Environments: map[string]ConstraintEnvState{"staging": {State: CDebt}}},
			},
			Environments: map[string]EnvReport{"staging": {
				StatsBefore: &StatsResult{ForeignKeys: 1},
				StatsAfter: &StatsResult{ForeignKeys: 3, Comparison: []StatRow{
					{Metric: "Foreign Keys", Before: "1", After: "3", Change: "+200%"},
					{Metric: "CHECK Constraints", Before: "283", After: "283", Change: "No change"},
					{Metric: "Partial Unique Index", Before: "1", After: "1", Change: "No change"},
					{Metric: "Orphaned Records", Before: "not measured", After: "not measured", Change: "n/a"},
				}},
				FirstAudit: []AuditFigure{{FK: "fk_a", Table: "public.t", Columns: []string{"a_id"}}, {FK: "fk_b", Table: "public.t", Columns: []string{"b_id"}, Orphans: 7}},
				LastAudit:  []AuditFigure{{FK: "fk_a"}, {FK: "fk_b", Orphans: 7}},
				Applied:    []ConstraintResult{{FK: "fk_a", DurationMS: 1200}, {FK: "fk_b", DurationMS: 800}},
				Validated:  []ConstraintResult{{FK: "fk_a", DurationMS: 61000}},
				Behaviour: []BehaviourResult{{FK: "fk_a", Cases: []BehaviourCase{
					{Name: "insert-orphan-rejected", Outcome: "passed", Passed: true},
					{Name: "on-delete-restrict", Outcome: "passed", Passed: true},
					{Name: "on-update-cascade", Outcome: "skipped", Detail: "no key"},
				}}},
			}},
			Phases: []PhaseSpan{
				{Environment: "staging", Phase: PhaseAudit, Started: t0, Ended: t0.Add(15 * time.Second)},
				{Environment: "staging", Phase: PhaseValidate, Started: t0.Add(15 * time.Second), Ended: t0.Add(75 * time.Second)},
				{Environment: "staging", Phase: PhaseAudit, Started: t0.Add(75 * time.Second), Ended: t0.Add(80 * time.Second)},
			},
			Decisions: []approval.Decision{{GateID: "staging/remediation/1", Action: approval.ChoiceAcceptDebt, Actor: alice, Roles: []string{"dba"}, Reason: "legacy | rows", Via: "slack", Time: t0}},
		}
	}
	withPerf := func(verdict string, worst float64) func(*Status) {
		return func(s *Status) {
			r := s.Environments["staging"]
			r.Perf = &PerfReport{Environment: "staging", Workload: "demo", Markdown: "| Operation | Baseline |\n|---|---|\n| create | 3 ms |",
				Verdict: verdict, Reason: "because", Comparison: &perf.Comparison{Verdict: verdict, Rows: []perf.Row{{Operation: "create", PerUnitMS: worst}}}}
			if verdict == perf.Warn {
				r.Perf.Override = &approval.Decision{Actor: bob, Reason: "accepted", Time: t0}
			}
			s.Environments["staging"] = r
		}
	}
	tests := []struct {
		name   string
		change func(*Status)
		want   []string
		absent []string
	}{
		{name: "metrics, invariants and debt", want: []string{
			"# 🟡 FK Rollout p — COMPLETED WITH DEBT",
			"| Foreign Keys | 1 | **3** | +200% |",
			"| CHECK Constraints | 283 | 283 | No change |",
			"| Partial Unique Index | 1 | 1 | No change |",
			"| Orphaned Records | 7 | 7 | No change |",
			"| staging | audit | ✅ done | 20.0 s (2 rounds) |",
			"| public.t.b_id orphans | 7 | 7 | 🟡 accepted as debt |",
			"| Orphan prevention | ✅ WORKING | 1/1 invalid inserts refused (staging) passed |",
			"| Freeze-by-reference (parent delete refused) | ✅ PROTECTED | 1/1",
			"| Referential actions (CASCADE / SET NULL / SET DEFAULT) | ⚠️ NOT PROVEN | 0/1 action cases passed, 1 skipped |",
			"| Referential integrity (staging) | 🟡 PARTLY (NOT VALID debt) | 1/2 constraints validated, 1 NOT VALID as debt |",
			"| FK Tests Passing | every behaviour case passes | 2/2 | 2/2 | ✅ PASS (1 skipped) |",
			"| Orphaned Records (staging) | no orphan left after remediation | 0 | 7 | ❌ FAIL (accepted as debt) |",
			"| Migration Duration (staging, apply + validate) | ADD NOT VALID and VALIDATE together under the target | <60 sec | 1m 03s | ❌ FAIL (3 statements) |",
			"| alice@example.com (dba) | slack | legacy \\| rows |",
		}, absent: []string{"## Performance", "## Rollback"}},
		{name: "perf pass", change: withPerf(perf.Pass, 1.5), want: []string{
			"## Performance (staging, workload demo)", "| create | 3 ms |", "**Verdict:** pass — because",
			"| Latency Overhead per Operation | worst per-operation overhead below the limit | <10 ms | +1.50 ms (worst) | ✅ PASS (pass) |",
		}},
		{name: "perf warn overridden", change: withPerf(perf.Warn, 14), want: []string{
			"**Override:** promoted despite the warning by bob@example.com",
			"| Latency Overhead per Operation | worst per-operation overhead below the limit | <10 ms | +14.00 ms (worst) | ❌ FAIL (warn) |",
		}},
		{name: "custom threshold", change: func(s *Status) { withPerf(perf.Pass, 14)(s); s.Thresholds.MaxOverheadMS = 15 }, want: []string{
			"| Latency Overhead per Operation | worst per-operation overhead below the limit | <15 ms |",
		}},
		{name: "type mismatch", change: func(s *Status) {
			r := s.Environments["staging"]
			r.Problems = []Problem{{FK: "fk_a", Rule: "type-mismatch", Message: "int vs bigint"}}
			s.Environments["staging"] = r
			s.State, s.Error = StateFailed, "plan does not fit staging"
		}, want: []string{"| Type consistency | ❌ MISMATCH |", "| Type Consistency | planned FK columns have the referenced columns' types | 100% | mismatches found | ❌ FAIL |", "**Error:** plan does not fit staging"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			if tc.change != nil {
				tc.change(s)
			}
			md := s.Report()
			for _, w := range tc.want {
				assert.Contains(t, md, w)
			}
			for _, a := range tc.absent {
				assert.NotContains(t, md, a)
			}
			for _, line := range strings.Split(md, "\n") {
				if strings.HasPrefix(line, "|") {
					assert.True(t, strings.HasSuffix(line, "|"), "table row is closed: %q", line)
				}
			}
		})
	}
}

// TestReportEscapesUserText: names, reasons, actors and errors that look
// like markdown or HTML render as inert text: no link, image, raw HTML,
// Slack mention or extra table cell, and no newline that starts a heading.
func TestReportEscapesUserText(t *testing.T) {
	const evil = "[click](http://evil) <!channel> | x"
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s := &Status{RolloutID: "r-" + evil, Requester: evil, State: StateRolledBack, PlanName: evil,
		EnvironmentOrder: []string{"staging"}, StartedAt: t0, UpdatedAt: t0.Add(time.Minute),
		Error:       "boom\n# Pwned <img src=x onerror=alert(1)> ![i](http://evil/i.png) *bold* `code` www.evil.example",
		Constraints: []ConstraintStatus{{Name: evil, Environments: map[string]ConstraintEnvState{"staging": {State: CRolledBack}}}},
		Environments: map[string]EnvReport{"staging": {
			FirstAudit:   []AuditFigure{{FK: evil, Table: evil, Columns: []string{evil, "b_id"}, Orphans: 2}},
			Remediations: []RemediationResult{{FK: evil, Mode: evil, Affected: 2, Quarantined: 2}},
		}},
		Phases: []PhaseSpan{{Environment: "staging", Phase: PhaseAudit, Started: t0, Ended: t0.Add(time.Second)}},
		Decisions: []approval.Decision{{GateID: evil, Action: approval.ChoiceApprove, Actor: evil, Roles: []string{evil}, Reason: evil + "\nsecond | line",
			Via: evil, Time: t0}},
		Refusals: []approval.Refusal{{Signal: "slack:approve", Actor: evil, GateID: evil, Reason: evil, Time: t0}},
		Rollback: &RollbackRecord{Trigger: "rollback", Rule: evil, Actor: evil, Reason: evil, At: t0,
			Dropped: []string{"staging:" + evil}, Failures: []string{evil}},
	}
	md := s.Report()

	// What a renderer sees as markup: the text without backslash-escaped
	// characters (they render as themselves).
	active := regexp.MustCompile(`\\[[:punct:]]`).ReplaceAllString(md, "")
	for _, bad := range []string{"[", "](", "<", "http://", "www.", "*bold*", "`"} {
		assert.NotContains(t, active, bad, "active markdown from user text")
	}
	assert.Contains(t, md, `# ↩️ FK Rollout \[click\]\(http\://evil\) \<!channel\> | x — ROLLED BACK`)
	assert.Contains(t, md, `**Rollout:** r-\[click\]\(http\://evil\) \<!channel\> | x`)
	assert.Contains(t, md, `**Reason:** \[click\]\(http\://evil\) \<!channel\> | x`)
	assert.Contains(t, md, `**Error:** boom \# Pwned \<img src=x onerror=alert\(1\)\>`)
	assert.Contains(t, md, `\<!channel\> \| x second \| line |`, "the reason's second line stays in its cell")
	assert.Contains(t, md, `- 2026-03-02 10:00:00 UTC: \[click\]\(http\://evil\) \<!channel\> | x on `)

	for _, line := range strings.Split(md, "\n") {
		assert.False(t, strings.HasPrefix(line, "# Pwned"), "a newline in user text starts no heading")
		if !strings.HasPrefix(line, "|") {
			continue
		}
		assert.True(t, strings.HasSuffix(line, "|"), "table row is closed: %q", line)
		if strings.Contains(line, "click") {
			// Every row with user text has as many cells as its header.
			assert.Contains(t, []int{4, 5, 7}, unescapedPipes(line), "cells of %q", line)
		}
	}
	decisionRow := ""
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "| 2026-03-02 10:00:00 UTC |") {
			decisionRow = line
		}
	}
	require.NotEmpty(t, decisionRow)
	assert.Equal(t, 7, unescapedPipes(decisionRow), "six cells: %q", decisionRow)
}

// unescapedPipes counts the cell separators of a table row: "|" not
// escaped by an odd run of backslashes.
func unescapedPipes(line string) int {
	n, slashes := 0, 0
	for _, c := range line {
		switch {
		case c == '\\':
			slashes++
			continue
		case c == '|' && slashes%2 == 0:
			n++
		}
		slashes = 0
	}
	return n
}
