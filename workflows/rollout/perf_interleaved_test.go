package rollout

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// interleaveFake registers PerfInterleave (and PerfExplain): create_workflow
// takes 5 ms plus noise of ±noiseMS that changes from slice to slice, plus
// overheadMS in the with-FKs slices; the bulk import (100 units) pays 100×
// the overhead per execution.
func interleaveFake(h *harness, overheadMS, noiseMS float64) *[]PerfInterleaveInput {
	var rounds []PerfInterleaveInput
	reg := func(fn any, name string) { h.env.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name}) }
	reg(func(ctx context.Context, in PerfInterleaveInput) (PerfInterleaveResult, error) {
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		h.fake.record(ActPerfInterleave, in.Environment, ctx)
		rounds = append(rounds, in)
		res := PerfInterleaveResult{Toggled: []string{"public.workflow_stages.fk_stages_instance"}}
		for i := in.FirstSlice; i < in.FirstSlice+2*in.Pairs; i++ {
			with := perf.SliceOrder(i)
			v := 5 + noiseMS*(2*rand.New(rand.NewPCG(uint64(i), 7)).Float64()-1)
			if with {
				v += overheadMS
			}
			res.Slices = append(res.Slices, perf.Slice{Index: i, WithFKs: with, Report: loadgen.Report{Ops: []loadgen.OpStats{
				{Operation: "create_workflow", Units: 1, Count: 60, AvgMS: v, P95MS: 2 * v},
				{Operation: "bulk_import_100", Units: 100, Count: 3, AvgMS: 40 + 100*(v-5), P95MS: 60},
			}}})
		}
		return res, nil
	}, ActPerfInterleave)
	reg(func(ctx context.Context, in PerfExplainInput) (PerfExplainResult, error) {
		h.fake.mu.Lock()
		defer h.fake.mu.Unlock()
		h.fake.record(ActPerfExplain, in.Environment, ctx)
		return PerfExplainResult{}, nil
	}, ActPerfExplain)
	return &rounds
}

func TestPerfInterleavedPassMeasuresBeforeApplyingAnything(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	rounds := interleaveFake(h, 2, 0.5)
	h.drive()
	st, err := h.run(perfInput())
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)

	backup, inter := callIndex(h.fake, ActBackup+" staging"), callIndex(h.fake, ActPerfInterleave+" staging")
	apply, explain := callIndex(h.fake, ActApplyConstraint+" staging"), callIndex(h.fake, ActPerfExplain+" staging")
	beh := callIndex(h.fake, ActRunBehaviourTests+" staging")
	require.True(t, backup >= 0 && inter >= 0 && apply >= 0 && explain >= 0 && beh >= 0, "calls: %v", h.fake.calls)
	assert.Less(t, backup, inter)
	assert.Less(t, inter, apply, "measured before the rollout applies its constraints")
	assert.Less(t, beh, explain, "the EXPLAIN checks stay after validation")
	assert.Zero(t, h.fake.count(ActPerfRun+" baseline staging"))
	assert.Zero(t, h.fake.count(ActPerfInterleave+" production"))
	require.Len(t, *rounds, 1, "settled in one round")
	r := (*rounds)[0]
	assert.Equal(t, 6, r.Pairs)
	assert.Equal(t, "1.667s", r.Slice, "20s split over 12 slices")
	assert.Equal(t, "2s", r.Warmup)
	assert.Len(t, r.FKs, 3)

	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	assert.Equal(t, perf.MethodInterleaved, p.Method)
	assert.Equal(t, perf.Pass, p.Verdict, p.Reason)
	require.NotNil(t, p.Comparison)
	row := p.Comparison.Rows[0]
	assert.InDelta(t, 2, row.PerUnitMS, 0.5)
	assert.Less(t, row.LowMS, row.PerUnitMS)
	assert.Greater(t, row.HighMS, row.PerUnitMS)
	assert.LessOrEqual(t, row.HighMS, 10.0)
	assert.Contains(t, p.Markdown, "Overhead (95% interval)")
	assert.Contains(t, p.Markdown, "adding NOT VALID for the with-FKs slices only")
	require.NotNil(t, p.Interleave)
	assert.Equal(t, 12, p.Interleave.Slices)

	md := st.Report()
	assert.Contains(t, md, "Overhead (95% interval)", "the completion report carries the table")
	assert.Contains(t, md, "upper bound of 95% interval")

	g := promotionGate(st)
	require.NotNil(t, g)
	assert.Equal(t, []string{approval.ChoiceApprove, approval.ChoiceReject}, g.Choices)
	require.Len(t, g.Detail.Promotion.Perf, 2)
	assert.Contains(t, g.Detail.Promotion.Perf[0].Overhead, "[")
	assert.Equal(t, perf.RowAcceptable, g.Detail.Promotion.Perf[0].Verdict)
}

func TestPerfInterleavedRollbackStopsBeforeApplying(t *testing.T) {
	h := newHarness(t, approveAll)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	interleaveFake(h, 30, 0.5)
	h.drive()
	st, err := h.run(perfInput())
	require.NoError(t, err)
	assert.Equal(t, StateRolledBack, st.State)
	p := st.Environments["staging"].Perf
	require.NotNil(t, p)
	assert.Equal(t, perf.Rollback, p.Verdict)
	assert.Contains(t, p.Reason, "create_workflow +3")
	assert.Zero(t, h.fake.count(ActApplyConstraint+" staging"), "nothing applied")
	assert.Empty(t, h.fake.constraints)
	assert.Zero(t, h.fake.count(ActPerfExplain+" staging"))
	assert.Nil(t, promotionGate(st))
}

// Noise as large as the limit: every round is inconclusive, the rollout
// measures max_rounds times and then the promotion gate asks a person, who
// must override with a reason; it never rolls back by itself.
func TestPerfInterleavedInconclusiveMeasuresAgainThenAsks(t *testing.T) {
	h := newHarness(t, nil)
	h.fake.orphans["staging"] = map[string]int64{}
	h.fake.orphans["production"] = map[string]int64{}
	rounds := interleaveFake(h, 10, 8)
	h.script = func(h *harness, g approval.Gate) []approval.DecisionInput {
		if g.Kind != notify.GatePromotion {
			return approveAll(h, g)
		}
		return []approval.DecisionInput{
			{GateID: g.ID, Choice: approval.ChoiceApprove, Actor: alice, Reason: "fine"},
			{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: alice, Reason: "within noise for a back-office form"},
			{GateID: g.ID, Choice: approval.ChoiceApproveOverride, Actor: bob, Reason: "agreed"},
		}
	}
	in := perfInput()
	in.Perf.MaxRounds = 2
	h.drive()
	st, err := h.run(in)
	require.NoError(t, err)
	assert.Equal(t, StateCompleted, st.State)
	require.Len(t, *rounds, 2)
	assert.Equal(t, 12, (*rounds)[1].FirstSlice, "the second round continues the pattern")
	p := st.Environments["staging"].Perf
	assert.Equal(t, perf.Inconclusive, p.Verdict, p.Reason)
	assert.Equal(t, 2, p.Comparison.Rounds)
	assert.Equal(t, 12, p.Comparison.Pairs)
	g := promotionGate(st)
	require.NotNil(t, g)
	assert.Equal(t, []string{approval.ChoiceApproveOverride, approval.ChoiceReject}, g.Choices)
	assert.Contains(t, strings.Join(g.Detail.Promotion.Warnings, "\n"), "perf inconclusive")
	assert.Contains(t, h.rejected[g.ID+" "+alice+" approve"], "perf inconclusive open for staging")
	require.NotNil(t, p.Override)
	assert.Equal(t, bob, p.Override.Actor)
	var again bool
	for _, e := range st.Timeline {
		again = again || strings.Contains(e.Message, "measuring again")
	}
	assert.True(t, again)
}

// One environment: a warning asks at once, before anything is applied.
func TestPerfInterleavedWarnWithoutPromotionAsksBeforeApplying(t *testing.T) {
	for _, c := range []struct {
		choice string
		state  RolloutState
		apply  int
	}{{approval.ChoiceApproveOverride, StateCompleted, 1}, {approval.ChoiceAbort, StateAborted, 0}} {
		t.Run(c.choice, func(t *testing.T) {
			h := newHarness(t, func(h *harness, g approval.Gate) []approval.DecisionInput {
				if g.Kind == notify.GateApproval && strings.Contains(g.Title, "perf warning") {
					assert.Equal(t, []string{approval.ChoiceApproveOverride, approval.ChoiceAbort}, g.Choices)
					return []approval.DecisionInput{{GateID: g.ID, Choice: c.choice, Actor: alice, Reason: "decided by the app team"}}
				}
				return approveAll(h, g)
			})
			h.fake.orphans["staging"] = map[string]int64{}
			interleaveFake(h, 14, 0.5)
			in := perfInput()
			in.Environments = in.Environments[:1]
			h.drive()
			st, err := h.run(in)
			require.NoError(t, err)
			assert.Equal(t, c.state, st.State)
			assert.Equal(t, perf.Warn, st.Environments["staging"].Perf.Verdict)
			assert.Equal(t, c.apply > 0, h.fake.count(ActApplyConstraint+" staging") > 0)
		})
	}
}

func TestPerfInterleavedBadInput(t *testing.T) {
	h := newHarness(t, nil)
	interleaveFake(h, 0, 0)
	in := perfInput()
	in.Perf.Pairs = 1
	in.Perf.MaxRounds = 11
	st, err := h.run(in)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "perf.pairs 1: want 2..50")
	assert.Contains(t, err.Error(), "perf.max_rounds 11: want 1..10")
	assert.Equal(t, StateFailed, st.State)
	assert.Empty(t, h.fake.calls)
}
