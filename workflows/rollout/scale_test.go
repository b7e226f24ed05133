package rollout

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/testkit/historymeter"
)

// Size bounds a large rollout must stay within (Temporal refuses a payload
// over 2 MB and terminates a history over 50 MB).
const (
	scaleMaxPayload = 1 << 20  // any one payload, the status query, the result
	scaleMaxHistory = 10 << 20 // the run's whole history
	scaleMaxResult  = 64 << 10 // the workflow's result: a summary
)

// scaleShape answers like a large real database: a generated plan, audit
// figures with the configured number of samples (wide rows), behaviour
// results with every case and its detail, a catalog snapshot per table.
type scaleShape struct {
	plan    plan.Plan
	samples int
}

func newScaleShape(fks, samples int) *scaleShape {
	t := func(n string) plan.TableName { return plan.TableName{Schema: "public", Name: n} }
	p := plan.Plan{Name: fmt.Sprintf("scale-%d", fks)}
	for i := range fks {
		p.ForeignKeys = append(p.ForeignKeys, plan.ForeignKey{
			Name:  fmt.Sprintf("fk_order_lines_%03d_order", i),
			Table: t(fmt.Sprintf("order_lines_%03d", i)), Columns: []string{"order_id", "tenant_id"},
			RefTable: t(fmt.Sprintf("orders_%03d", i)), RefColumns: []string{"id", "tenant_id"},
			Priority: plan.Priority(1 + i%4)})
	}
	return &scaleShape{plan: p, samples: samples}
}

func (s *scaleShape) auditFigure(fk plan.ForeignKey, orphans int64) AuditFigure {
	fig := AuditFigure{FK: fk.Name, Table: fk.Table.String(), References: fk.RefTable.String(), Columns: fk.Columns,
		Orphans: orphans, DurationMS: 1840, Nullable: true}
	for i := range min(int64(s.samples), orphans) {
		fig.Samples = append(fig.Samples, fmt.Sprintf("id=%d, order_id=%d, tenant_id=%d", 9_000_000+i, 4_000_000+i*7, 1000+i))
	}
	return fig
}

func (s *scaleShape) behaviour(fk plan.ForeignKey) BehaviourResult {
	br := BehaviourResult{FK: fk.Name, Passed: true}
	for _, c := range []string{"reject orphan insert", "reject orphan update", "protect parent delete", "protect parent update", "null key allowed"} {
		br.Cases = append(br.Cases, BehaviourCase{Name: c, Outcome: "passed", Passed: true,
			Detail: fmt.Sprintf("row with (order_id, tenant_id)=(-1, -1) rejected with 23503 by %s", fk.Name)})
	}
	return br
}

func (s *scaleShape) stats() StatsResult {
	var b strings.Builder
	b.WriteString(`{"tables":[`)
	for i, fk := range s.plan.ForeignKeys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"table":%q,"rows":1250000,"bytes":268435456,"indexes":3}`, fk.Table.String())
	}
	b.WriteString("]}")
	return StatsResult{Snapshot: json.RawMessage(b.String()), TakenAt: time.Unix(0, 0), ForeignKeys: len(s.plan.ForeignKeys),
		Comparison: []StatRow{{Metric: "foreign keys", Before: "12", After: fmt.Sprint(12 + len(s.plan.ForeignKeys)), Change: "+"}}}
}

// scaleReport is what one scale run measured.
type scaleReport struct {
	run                         historymeter.Run
	result, query, page, report int
}

func (r scaleReport) String() string {
	return fmt.Sprintf("history ≈ %.2f MB in %d events; largest payload %.1f KB (%s); result %.1f KB; status query %.1f KB; constraints page %.1f KB; report query %.1f KB",
		float64(r.run.HistoryBytes())/(1<<20), r.run.Events, float64(r.run.Largest)/1024, r.run.LargestWhat,
		float64(r.result)/1024, float64(r.query)/1024, float64(r.page)/1024, float64(r.report)/1024)
}

// TestScaleRolloutStaysWithinTemporalLimits runs a 500-constraint plan
// through staging and production with orphans in every other constraint
// (remediated at the gate) and checks the sizes Temporal limits.
//
//	go test ./workflows/rollout -run TestScale -v
func TestScaleRolloutStaysWithinTemporalLimits(t *testing.T) {
	fks := scaleFKs(500)
	h := newHarness(t, approveAll)
	meter := historymeter.Attach(h.env)
	h.env.SetTestTimeout(10 * time.Minute)
	h.fake.shape = newScaleShape(fks, 5)
	for _, env := range []string{"staging", "production"} {
		h.fake.orphans[env] = map[string]int64{}
		for i, fk := range h.fake.shape.plan.ForeignKeys {
			if i%2 == 0 {
				h.fake.orphans[env][fk.Name] = int64(10 + i)
			}
		}
	}
	in := testInput()
	in.Environments[1].MaintenanceWindow = nil
	h.drive()
	h.env.ExecuteWorkflow(WorkflowName, in)
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())

	var rep scaleReport
	var result json.RawMessage
	require.NoError(t, h.env.GetWorkflowResult(&result))
	rep.result = len(result)
	v, err := h.env.QueryWorkflow(QueryStatus)
	require.NoError(t, err)
	var q json.RawMessage
	require.NoError(t, v.Get(&q))
	rep.query = len(q)
	rep.run = meter.Run("rollout-test-1")
	v, err = h.env.QueryWorkflow(QueryReport)
	require.NoError(t, err)
	require.NoError(t, v.Get(&q))
	rep.report = len(q)
	rep.page = scaleConstraintsPage(t, h)
	t.Logf("rollout of %d constraints over 2 environments: %s", fks, rep)

	var st Status
	require.NoError(t, json.Unmarshal(result, &st))
	assert.Equal(t, StateCompleted, st.State)
	assert.Less(t, rep.run.Largest, scaleMaxPayload, "largest payload: %s", rep.run.LargestWhat)
	assert.Less(t, rep.run.HistoryBytes(), scaleMaxHistory, "history")
	assert.Less(t, rep.query, scaleMaxPayload, "status query")
	assert.Less(t, rep.result, scaleMaxResult, "result")
	assert.Less(t, rep.page, scaleMaxPayload, "constraints page")
	assert.Less(t, rep.report, scaleMaxPayload, "report query")
	// The bounded copies count every constraint.
	require.NotNil(t, st.Totals)
	assert.Equal(t, fks, st.Totals.Constraints)
	assert.Equal(t, fks, st.Progress("production").Tested)
	require.NotNil(t, st.Truncated)
	assert.Equal(t, fks-StatusLimitsResult.Constraints, st.Truncated.Constraints)
}

// scaleConstraintsPage pages through every constraint with the
// constraints query, checks each appears once, and returns the size of the
// largest page.
func scaleConstraintsPage(t *testing.T, h *harness) int {
	seen := map[string]bool{}
	largest, offset := 0, 0
	for {
		v, err := h.env.QueryWorkflow(QueryConstraints, ConstraintsQuery{Offset: offset, Limit: MaxConstraintsPage})
		require.NoError(t, err)
		var raw json.RawMessage
		require.NoError(t, v.Get(&raw))
		largest = max(largest, len(raw))
		var page ConstraintsPage
		require.NoError(t, json.Unmarshal(raw, &page))
		require.Equal(t, len(h.fake.shape.plan.ForeignKeys), page.Total)
		for _, c := range page.Constraints {
			assert.False(t, seen[c.Name], "%s listed twice", c.Name)
			seen[c.Name] = true
		}
		if page.Next == 0 {
			break
		}
		offset = page.Next
	}
	assert.Len(t, seen, len(h.fake.shape.plan.ForeignKeys), "every constraint on some page")
	return largest
}

// scaleFKs is n, or $FKROLLOUT_SCALE_FKS (a quicker look at a smaller plan).
func scaleFKs(n int) int {
	var v int
	if _, err := fmt.Sscan(os.Getenv("FKROLLOUT_SCALE_FKS"), &v); err == nil && v > 0 {
		return v
	}
	return n
}
