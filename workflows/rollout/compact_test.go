package rollout

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// compactStatus is a status of n constraints in staging, every other one
// with orphans and three samples.
func compactStatus(n int) *Status {
	st := &Status{RolloutID: "r1", EnvironmentOrder: []string{"staging"}, Environments: map[string]EnvReport{}}
	rep := EnvReport{Name: "staging"}
	for i := range n {
		name := fmt.Sprintf("fk_%03d", i)
		state := CTested
		if i%2 == 0 {
			state = CDebt
		}
		st.Constraints = append(st.Constraints, ConstraintStatus{Name: name, Environments: map[string]ConstraintEnvState{"staging": {State: state}}})
		fig := AuditFigure{FK: name}
		if i%2 == 0 {
			fig.Orphans, fig.Samples = 3, []string{"id=1", "id=2", "id=3"}
		}
		rep.LastAudit = append(rep.LastAudit, fig)
		rep.Validated = append(rep.Validated, ConstraintResult{FK: name})
		rep.Behaviour = append(rep.Behaviour, BehaviourResult{FK: name, Passed: i != 7, Cases: []BehaviourCase{{Name: "insert"}, {Name: "delete"}}})
	}
	st.Environments["staging"] = rep
	return st
}

func TestBoundedKeepsCountsAndSaysWhatItLeftOut(t *testing.T) {
	cases := []struct {
		name                  string
		n                     int
		lim                   Limits
		wantRows, wantSamples int
		wantTruncated         bool
	}{
		{"small plan: everything", 6, StatusLimitsQuery, 6, 9, false},
		{"large plan, query", 300, StatusLimitsQuery, 100, 150, true},
		{"large plan, result", 300, StatusLimitsResult, 10, 15, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			full := compactStatus(c.n)
			b := full.Bounded(c.lim)
			assert.Len(t, full.Constraints, c.n, "the original is not changed")
			require.NotNil(t, b.Totals)
			assert.Equal(t, c.n, b.Planned())
			assert.Equal(t, full.Counts("staging"), b.Counts("staging"))
			assert.Equal(t, full.Progress("staging"), b.Progress("staging"))
			assert.Equal(t, int64(3*((c.n+1)/2)), b.Totals.Orphans["staging"])
			assert.Len(t, b.Constraints, min(c.n, c.lim.Constraints))
			rep := b.Environments["staging"]
			assert.Len(t, rep.LastAudit, c.wantRows)
			samples := 0
			for _, f := range rep.LastAudit {
				samples += len(f.Samples)
				assert.LessOrEqual(t, len(f.Samples), c.lim.SamplesPerFK)
			}
			assert.Equal(t, min(c.wantSamples, c.lim.Samples), samples)
			if c.n > 7 {
				assert.False(t, rep.Behaviour[0].Passed, "failed behaviour first")
				assert.NotEmpty(t, rep.Behaviour[0].Cases, "a failed constraint keeps its cases")
			}
			if !c.wantTruncated {
				assert.Nil(t, b.Truncated)
				assert.Equal(t, full.Environments["staging"].Behaviour, rep.Behaviour)
				return
			}
			require.NotNil(t, b.Truncated)
			assert.Equal(t, c.n-c.lim.Constraints, b.Truncated.Constraints)
			assert.Positive(t, b.Truncated.Rows)
			assert.Equal(t, 3*((c.n+1)/2)-samples, b.Truncated.Samples, "every sample is either shown or counted")
			assert.Contains(t, b.Truncated.Hint, "--constraints")
			again := b.Bounded(c.lim)
			assert.Equal(t, b.Truncated.Constraints, again.Truncated.Constraints, "bounding twice does not recount the first cut")
		})
	}
}

func TestCapAuditSamples(t *testing.T) {
	fig := func(n int) AuditFigure {
		f := AuditFigure{}
		for i := range n {
			f.Samples = append(f.Samples, fmt.Sprint(i))
		}
		return f
	}
	cases := []struct {
		name         string
		in           []int
		perFK, total int
		want         []int
		dropped      int
	}{
		{"under the caps", []int{2, 3}, 5, 100, []int{2, 3}, 0},
		{"per constraint", []int{9, 1}, 5, 100, []int{5, 1}, 4},
		{"total budget", []int{5, 5, 5}, 5, 12, []int{5, 5, 2}, 3},
		{"budget spent", []int{5, 5}, 5, 5, []int{5, 0}, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var figs []AuditFigure
			for _, n := range c.in {
				figs = append(figs, fig(n))
			}
			assert.Equal(t, c.dropped, capAuditSamples(figs, c.perFK, c.total))
			for i, n := range c.want {
				assert.Len(t, figs[i].Samples, n)
			}
		})
	}
}

func TestConstraintPage(t *testing.T) {
	st := compactStatus(5)
	cases := []struct {
		name     string
		q        ConstraintsQuery
		want     []string
		next     int
		total    int
		errorHas string
	}{
		{"first page", ConstraintsQuery{Limit: 2}, []string{"fk_000", "fk_001"}, 2, 5, ""},
		{"last page", ConstraintsQuery{Offset: 4, Limit: 2}, []string{"fk_004"}, 0, 5, ""},
		{"past the end", ConstraintsQuery{Offset: 9}, nil, 0, 5, ""},
		{"one state in one environment", ConstraintsQuery{Environment: "staging", State: CDebt}, []string{"fk_000", "fk_002", "fk_004"}, 0, 3, ""},
		{"unknown environment", ConstraintsQuery{Environment: "prod"}, nil, 0, 0, `environment "prod" is not one of staging`},
		{"state without environment", ConstraintsQuery{State: CDebt}, nil, 0, 0, "name the environment too"},
		{"negative offset", ConstraintsQuery{Offset: -1}, nil, 0, 0, "want 0 or more"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			page, err := st.ConstraintPage(c.q)
			if c.errorHas != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.errorHas)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, d := range page.Constraints {
				names = append(names, d.Name)
			}
			assert.Equal(t, c.want, names)
			assert.Equal(t, c.next, page.Next)
			assert.Equal(t, c.total, page.Total)
		})
	}
	page, err := st.ConstraintPage(ConstraintsQuery{Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, []string{"id=1", "id=2", "id=3"}, page.Constraints[0].Audit["staging"].Samples, "the page carries the last audit")
}

func TestGateListsAreCapped(t *testing.T) {
	var dirty []AuditFigure
	for i := range gateRows + 10 {
		dirty = append(dirty, AuditFigure{FK: fmt.Sprintf("fk_%d", i), Orphans: 2, Samples: []string{"a", "b", "c", "d", "e"}})
	}
	lines, fks := remediationLines(dirty, nil, nil)
	assert.Len(t, fks, gateRows)
	assert.Len(t, fks[0].Samples, gateSamples)
	assert.Equal(t, "… and 10 more constraints with 20 orphans (fkrollout status --constraints lists them all)", lines[len(lines)-1])

	var tests []notify.TestResult
	for i := range 120 {
		tests = append(tests, notify.TestResult{Name: fmt.Sprint(i), Passed: i != 110})
	}
	capped := capTests(tests)
	assert.Len(t, capped, promotionTests+1)
	assert.Equal(t, "110", capped[0].Name, "failed tests first")
	assert.Equal(t, "… 70 more tests not listed (70 passed)", capped[promotionTests].Name)

	assert.Equal(t, "héll… (2 more bytes)", clip("héllo!", 5))
	assert.True(t, strings.HasPrefix(clip("ééé", 3), "é"), "cut on a rune boundary")
}

func TestBoundedKeepsOpenGatesAndTheNewestClosed(t *testing.T) {
	st := compactStatus(1)
	for i := range 30 {
		status := approval.GateTimedOut
		if i == 3 {
			status = approval.GateOpen
		}
		st.Gates = append(st.Gates, approval.Gate{ID: fmt.Sprintf("staging/approval/%d", i), Status: status})
		st.Decisions = append(st.Decisions, approval.Decision{GateID: fmt.Sprintf("staging/approval/%d", i)})
	}
	b := st.Bounded(StatusLimitsResult)
	require.Len(t, b.Gates, StatusLimitsResult.Gates+1)
	assert.Equal(t, "staging/approval/3", b.Gates[0].ID, "an open gate is always listed")
	assert.Equal(t, "staging/approval/29", b.Gates[len(b.Gates)-1].ID)
	assert.Len(t, b.Decisions, StatusLimitsResult.Gates)
	require.NotNil(t, b.Truncated)
	assert.Equal(t, 29-StatusLimitsResult.Gates, b.Truncated.Gates)
	assert.Equal(t, 30-StatusLimitsResult.Gates, b.Truncated.Decisions)
}
