package rollout

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/stats"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// perfFake registers PerfRun and PerfExplain on the harness: the baseline
// reports create_workflow at 5 ms, the with-FKs run adds overheadMS; the
// bulk import (100 units) pays 100× the overhead per execution but is
// judged per unit. Calls go into the fake engine's call log, so their order
// relative to apply and validate is checked.
func perfFake(h *harness, overheadMS float64) *[]PerfRunInput {
	// These tests are of the two-run comparison that rollouts started
	// before the interleaved one keep (perf_interleaved_test.go).
	h.env.OnGetVersion(perfInterleavedVersion, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	var runs []PerfRunInput
	reg := func(fn any, name string) { h.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(ctx context.Context, in PerfRunInput) (loadgen.Report, error) {
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		h.fake.record(ActPerfRun+" "+in.Label, in.Environment, ctx)
		runs = append(runs, in)
		add := 0.0
		if in.Label == "with-fks" {
			add = overheadMS
		}
		return loadgen.Report{Workers: in.Workers, DurationMS: 30000, Ops: []loadgen.OpStats{
			{Operation: "create_workflow", Units: 1, Count: 600, AvgMS: 5 + add, P50MS: 4 + add, P95MS: 9 + add, Throughput: 20},
			{Operation: "bulk_import_100", Units: 100, Count: 30, AvgMS: 40 + 100*add/20, P95MS: 60 + 100*add/20, Throughput: 1},
		}, Total: loadgen.OpStats{Operation: "total", Count: 630, Throughput: 21}}, nil
	}, ActPerfRun)
	reg(func(ctx context.Context, in PerfExplainInput) (PerfExplainResult, error) {
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		h.fake.record(ActPerfExplain, in.Environment, ctx)
		rec := "CREATE INDEX CONCURRENTLY idx_vendor_master_workspace_id ON public.vendor_master (workspace_id)"
		res := PerfExplainResult{FKChecks: []perf.PlanCheck{
			{FK: "public.vendor_master.fk_vendor_workspace", Table: "public.vendor_master", ScanNode: "Seq Scan", SeqScan: true,
				Advice: stats.IndexAdvice{Covered: false}, Recommendation: rec},
		}, Recommended: []string{rec}}
		if in.CreateIndexes {
			res.IndexesBuilt = []string{"idx_vendor_master_workspace_id"}
			res.FKChecks[0].SeqScan, res.FKChecks[0].ScanNode, res.FKChecks[0].Recommendation = false, "Index Only Scan", ""
		}
		return res, nil
	}, ActPerfExplain)
	return &runs
}

func perfInput() Input {
	in := testInput()
	in.Perf = &PerfInput{Enabled: true, Workers: 2, Duration: "20s", Warmup: "2s"}
	return in
}

func promotionGate(st *Status) *approval.Gate {
	for i := range st.Gates {
		if st.Gates[i].Kind == notify.GatePromotion {
			return &st.Gates[i]
		}
	}
	return nil
}

func callIndex(f *fakeEngine, call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.calls {
		if c == call {
			return i
		}
	}
	return -1
}

func TestPerfPassPromotesAsUsual(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	runs := perfFake(h, 2)
	h.drive()
	st, err := h.run(perfInput())
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)

	// Baseline after the backup and before any constraint; with-FKs after
	// the last validation and the behaviour tests; only in staging.
	backup, base := callIndex(h.fake, ActBackup+" staging"), callIndex(h.fake, ActPerfRun+" baseline staging")
	apply, with := callIndex(h.fake, ActApplyConstraint+" staging"), callIndex(h.fake, ActPerfRun+" with-fks staging")
	beh := callIndex(h.fake, ActRunBehaviourTests+" staging")
	require.True(t, backup >= 0 && base >= 0 && apply >= 0 && with >= 0 && beh >= 0, "calls: %v", h.fake.calls)
	assert.Less(t, backup, base)
	assert.Less(t, base, apply)
	assert.Less(t, beh, with)
	assert.Equal(t, 1, h.fake.count(ActPerfExplain+" staging"))
	assert.Zero(t, h.fake.count(ActPerfRun+" baseline production"))
	assert.Zero(t, h.fake.count(ActPerfRun+" with-fks production"))
	require.Len(t, *runs, 2)
	for _, r := range *runs {
		assert.Equal(t, PerfRunInput{Environment: "staging", RolloutID: "rollout-test-1", Label: r.Label, Workload: "demo",
			Workers: 2, Duration: "20s", Warmup: "2s"}, r, "same settings for both runs")
	}

	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	assert.Equal(t, perf.Pass, p.Verdict)
	require.NotNil(t, p.Comparison)
	require.Len(t, p.Comparison.Rows, 2)
	assert.Equal(t, 2.0, p.Comparison.Rows[0].OverheadMS)
	assert.Equal(t, perf.RowAcceptable, p.Comparison.Rows[0].Verdict)
	assert.Equal(t, perf.RowAcceptable, p.Comparison.Rows[1].Verdict, "bulk import judged per unit")
	assert.Contains(t, p.Markdown, "| Operation | Baseline | With FKs | Overhead | Acceptable |")
	assert.Contains(t, p.Markdown, "CREATE INDEX CONCURRENTLY idx_vendor_master_workspace_id")
	assert.Nil(t, st.Environments["production"].Perf)

	g := promotionGate(st)
	require.NotNil(t, g)
	assert.Equal(t, []string{approval.ChoiceApprove, approval.ChoiceReject}, g.Choices)
	assert.Contains(t, g.Summary, "perf (demo): pass")
	require.NotNil(t, g.Detail.Promotion)
	require.Len(t, g.Detail.Promotion.Perf, 2)
	assert.True(t, g.Detail.Promotion.Perf[0].Acceptable)
	assert.Equal(t, 7.0, g.Detail.Promotion.Perf[0].WithFKsMS)
	assert.Contains(t, strings.Join(g.Detail.Promotion.Warnings, "\n"), "recommended: CREATE INDEX CONCURRENTLY")
	for fk, s := range stateIn(st, "production") {
		assert.Equal(t, CTested, s, fk)
	}
}

func TestPerfWarnNeedsExplicitOverride(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	perfFake(h, 15)
	h.script = func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind != notify.GatePromotion {
			return approveAll(h, g)
		}
		return []approval.DecisionInput{
			{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "looks fine"},
			{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: "BOB@example.com"}, // no reason
			{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: requester, Reason: "mine"},
			{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: alice, Reason: "+15 ms on create_workflow is fine for a back-office form"},
			{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: bob, Reason: "agreed, index ticket DB-42"},
		}
	}
	h.drive()
	st, err := h.run(perfInput())
	if err != nil {
		for _, e := range st.Timeline {
			t.Log(e.Time, e.Environment, e.Phase, e.Message)
		}
	}
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)

	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	assert.Equal(t, perf.Warn, p.Verdict)
	assert.Contains(t, p.Reason, "create_workflow +15.0 ms")
	assert.Equal(t, perf.RowWarning, p.Comparison.Rows[0].Verdict)

	g := promotionGate(st)
	require.NotNil(t, g)
	assert.Equal(t, []string{approval.ChoiceApproveOverride, approval.ChoiceReject}, g.Choices)
	assert.Contains(t, strings.Join(g.Detail.Promotion.Warnings, "\n"), "perf warning: above the acceptable limit")
	assert.False(t, g.Detail.Promotion.Perf[0].Acceptable)

	key := g.ID + " "
	assert.Contains(t, h.rejected[key+alice+" approve"], "perf warning open for staging")
	assert.Contains(t, h.rejected[key+alice+" approve"], "approve-override")
	assert.Contains(t, h.rejected[key+"BOB@example.com approve-override"], "needs a reason")
	assert.Contains(t, h.rejected[key+requester+" approve-override"], "four-eyes")
	assert.Equal(t, 1, h.accepted[key+alice+" approve-override"].Waiting)
	assert.Equal(t, approval.GateDecided, h.accepted[key+bob+" approve-override"].Status)

	require.NotNil(t, p.Override)
	assert.Equal(t, bob, p.Override.Actor)
	assert.Contains(t, st.Markdown(), "overridden by "+bob)
	assert.Equal(t, approval.ChoiceApproveOverride, p.Override.Action)
	for fk, s := range stateIn(st, "production") {
		assert.Equal(t, CTested, s, fk)
	}
}

func TestPerfRollbackDropsStagingAndStops(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	perfFake(h, 30)
	h.drive()
	st, err := h.run(perfInput())
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)

	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	assert.Equal(t, perf.Rollback, p.Verdict)
	assert.Contains(t, p.Reason, "above the rollback limit (+20 ms): create_workflow +30.0 ms")

	for fk, s := range stateIn(st, "staging") {
		assert.Equal(t, CRolledBack, s, fk)
	}
	for fk, s := range stateIn(st, "production") {
		assert.Equal(t, CPlanned, s, fk)
	}
	assert.Empty(t, h.fake.constraints, "staging constraints dropped")
	assert.Equal(t, 1, h.fake.count(ActRollback+" staging"))
	assert.Zero(t, h.fake.count(ActApplyConstraint+" production"))
	assert.Nil(t, promotionGate(st), "no promotion after a rollback verdict")

	var ended bool
	for _, e := range st.Timeline {
		if e.Phase == PhaseRollback && strings.Contains(e.Message, "rolled back by perf") && strings.Contains(e.Message, "create_workflow +30.0 ms") {
			ended = true
		}
	}
	assert.True(t, ended, "the timeline ends with the reason: %v", st.Timeline)
	var rb *notify.Event
	for i := range h.fake.notifications {
		if h.fake.notifications[i].Kind == notify.KindRolledBack {
			rb = &h.fake.notifications[i]
		}
	}
	require.NotNil(t, rb)
	assert.Equal(t, "perf", rb.Rollback.Rule)
	assert.Contains(t, rb.Rollback.Reason, "perf phase in staging")
	assert.Len(t, rb.Rollback.Constraints, 3)
}

// Without a following promotion gate (one environment) a warning asks at
// once: override keeps the constraints.
func TestPerfWarnWithoutPromotionAsks(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GateApproval && strings.Contains(g.Title, "perf warning") {
			return []approval.DecisionInput{{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: alice, Reason: "accepted by the app team"}}
		}
		return approveAll(h, g)
	})
	h.fake.orphans["staging"] = map[string]int64{}
	perfFake(h, 12)
	in := perfInput()
	in.Environments = in.Environments[:1]
	in.Perf.CreateIndexes = true
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	require.NotNil(t, p.Override)
	assert.Equal(t, alice, p.Override.Actor)
	assert.Equal(t, []string{"idx_vendor_master_workspace_id"}, p.Explain.IndexesBuilt)
	assert.Contains(t, p.Markdown, "Indexes built on request")
}

func TestPerfSkippedInDryRunAndWhenOff(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Input)
	}{
		{"dry run", func(in *Input) { in.DryRun = true }},
		{"disabled", func(in *Input) { in.Perf.Enabled = false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, approveAll)
			h.fake.orphans["staging"] = map[string]int64{}
			h.fake.orphans["production"] = map[string]int64{}
			perfFake(h, 30)
			in := perfInput()
			c.mod(&in)
			h.drive()
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Zero(t, h.fake.count(ActPerfRun+" baseline staging"))
			assert.Zero(t, h.fake.count(ActPerfExplain+" staging"))
			assert.Nil(t, st.Environments["staging"].Perf)
		})
	}
}

func TestPerfBadInputFailsBeforeAnything(t *testing.T) {
	h := newHarness(t, nil)
	perfFake(h, 0)
	in := perfInput()
	in.Perf.Environment = "qa"
	in.Perf.Duration = "soon"
	in.Perf.Workload = "checkout"
	in.Perf.WorkloadYAML = "operations: []"
	in.Perf.Metric = "p42"
	in.Thresholds = Thresholds{MaxOverheadMS: 30, RollbackOverheadMS: 20}
	st, err := h.run(in)
	require.Error(t, err)
	for _, want := range []string{`perf.environment "qa"`, `perf.duration "soon"`, "not both", `perf.metric "p42"`, "rollback_overhead_ms 20 is below"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Equal(t, StateFailed, st.State)
	assert.Empty(t, h.fake.calls)
}

// A promotion gate that times out into "approve" must not promote past an
// open perf warning; a timeout cannot choose approve-override at all.
func TestPerfWarningIsNotOverriddenByATimeout(t *testing.T) {
	h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind == notify.GatePromotion {
			return nil
		}
		return approveAll(h, g)
	})
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	perfFake(h, 15)
	in := perfInput()
	in.Approval.Gates["promotion/production"] = approval.GateRule{Approvers: []string{alice, bob}, Timeout: "4h", OnTimeout: approval.ChoiceApprove}
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateRejected, st.State)
	g := promotionGate(st)
	require.NotNil(t, g)
	assert.Equal(t, approval.GateTimedOut, g.Status)
	assert.Zero(t, h.fake.count(ActApplyConstraint+" production"))
	assert.Nil(t, st.Environments["staging"].Perf.Override)

	h2 := newHarness(t, nil)
	in = perfInput()
	in.Approval.Gates["promotion"] = approval.GateRule{Timeout: "1h", OnTimeout: approval.ChoiceApproveOverride}
	_, err = h2.run(in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "approval.gates[promotion].on_timeout: approve-override needs a person")
}
