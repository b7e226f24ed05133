package slackbot

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A gate's message mentions who may decide it (slack.users, approver_groups)
// and pages on-call when something went wrong, in the text that pings
// people and at the top of the message.
func TestGateOpenedMentionsApproversAndPagesOnCall(t *testing.T) {
	thread := MessageRef{Channel: testChannel, TS: "1700000000.000001"}
	withGroups := func(c *Config) { c.ApproverGroups = map[string]string{"S0DBA": "dba", "S0OPS": "ops"} }
	for _, c := range []struct {
		name      string
		kind      GateKind
		approvers []string
		want      []string
		not       []string
	}{
		{name: "promotion: the approvers in policy order, no page", kind: GatePromotion, approvers: []string{"alice@example.com", "role:dba", "BOB@example.com"},
			want: []string{"<@U0ALICE> <!subteam^S0DBA> <@U0BOB> your decision is needed"}, not: []string{testOnCall, "S0OPS", "U0DAVE"}},
		{name: "failed step: on-call paged and the approvers", kind: GateApproval, approvers: []string{"dave@example.com"},
			want: []string{"<!subteam^" + testOnCall + "> on call: a step failed and waits for a decision", "<@U0DAVE> your decision is needed"}},
		{name: "investigate: on-call paged", kind: GateInvestigate,
			want: []string{"<!subteam^" + testOnCall + "> on call: the watch found something to investigate"}, not: []string{"your decision"}},
		{name: "approver without a Slack user: nobody to mention", kind: GateRemediation, approvers: []string{"carol@example.com", "role:nobody"},
			not: []string{"<@", "subteam", "your decision"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, withGroups)
			_, err := f.bot.Notifier.Post(context.Background(), Event{RolloutID: "fkr-9", Kind: KindGateOpened, Environment: "production", Thread: thread,
				Gate: &Gate{ID: "production/x/1", Kind: c.kind, Title: "a gate", Approvers: c.approvers, Investigate: &InvestigateData{Rule: "r"}}})
			require.NoError(t, err)
			posts := f.rec.byMethod("chat.postMessage")
			require.Len(t, posts, 1)
			fallback, body := posts[0].Form.Get("text"), text(t, blocksOf(t, posts[0]))
			for _, w := range c.want {
				assert.Contains(t, fallback, w, "the text that notifies")
				assert.Contains(t, body, w, "the message")
			}
			for _, n := range c.not {
				assert.NotContains(t, fallback+body, n)
			}
		})
	}
}
