package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

func TestProgressIsCumulative(t *testing.T) {
	st := &Status{Constraints: []ConstraintStatus{
		{Name: "a", Environments: map[string]ConstraintEnvState{"staging": {State: CTested}}},
		{Name: "b", Environments: map[string]ConstraintEnvState{"staging": {State: CValidated}}},
		{Name: "c", Environments: map[string]ConstraintEnvState{"staging": {State: CDebt}}},
		{Name: "d", Environments: map[string]ConstraintEnvState{"staging": {State: CPlanned}}},
	}}
	assert.Equal(t, Progress{Planned: 4, Applied: 3, Validated: 2, Tested: 1, Debt: 1}, st.Progress("staging"))
}

func TestGateBlock(t *testing.T) {
	dl := time.Date(2026, 12, 9, 10, 0, 0, 0, time.UTC)
	g := approval.Gate{ID: "production/promotion/2", Kind: notify.GatePromotion, Title: "promote from staging to production",
		Choices: []string{approval.ChoiceApprove, approval.ChoiceReject}, Status: approval.GateOpen, Deadline: &dl,
		Rule:    approval.GateRule{Approvers: []string{"alice", "bob"}, MinApprovals: 2, OnTimeout: approval.ChoiceReject},
		Votes:   []approval.Decision{{Action: approval.ChoiceApprove, Actor: "alice"}},
		Message: notify.MessageRef{Channel: "C1", TS: "171.0002"}}
	st := &Status{RolloutID: "r1", Requester: "rita", Thread: notify.MessageRef{Channel: "C1", TS: "171.0001"},
		Refusals: []approval.Refusal{{GateID: g.ID, Actor: "mallory", Reason: "not an allowed approver"}}}
	for _, tc := range []struct {
		style BlockStyle
		want  []string
	}{
		{BlockText, []string{"Gate production/promotion/2: promote from staging to production (decides whether the next environment starts)", "Choices: approve | reject",
			"Who: alice, bob; 2 distinct approval(s) to proceed; not rita (requester) except reject",
			"Votes: 1 of 2 for approve (alice) · Deadline: 2026-12-09 10:00 UTC → reject", "Last refused: mallory: not an allowed approver",
			`  {"gate_id":"production/promotion/2","choice":"approve","actor":"you@example.com","reason":"why","via":"ui"}`,
			`CLI: fkrollout decide r1 production/promotion/2 approve --reason "…"`,
			"Slack: https://slack.com/archives/C1/p1710002?thread_ts=171.0001&cid=C1"}},
		{BlockMarkdown, []string{"- Gate `production/promotion/2`: promote", "- UI: Send Update `decide` with:\n```\n{\"gate_id\"",
			"- CLI: `fkrollout decide r1 production/promotion/2 approve"}},
	} {
		got := st.GateBlock(g, tc.style)
		for _, w := range tc.want {
			assert.Contains(t, got, w)
		}
		// Short enough to read without scrolling.
		assert.LessOrEqual(t, strings.Count(got, "\n"), 11)
	}
}

func TestHeadLineAndWindow(t *testing.T) {
	opens := time.Date(2026, 12, 7, 19, 0, 0, 0, time.UTC)
	st := &Status{State: StateWaitingForWindow, Phase: PhaseWindow, Environment: "production",
		Environments: map[string]EnvReport{"production": {WindowOpens: &opens, WindowZone: "Asia/Jakarta"}}}
	assert.Equal(t, "waiting-for-window · phase maintenance-window · production", st.HeadLine())
	assert.Contains(t, st.Markdown(), "production opens 2026-12-08 02:00 Asia/Jakarta (2026-12-07 19:00 UTC)")
	assert.True(t, strings.HasPrefix(st.Markdown(), "**waiting-for-window · phase maintenance-window · production**\n"))
}
