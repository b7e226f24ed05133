package slackbot

import (
	"maps"
	"slices"
	"strings"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// gateMentions is the line that pings people when a gate opens: the
// approvers who may decide it (their Slack users from slack.users, their
// roles' user groups from approver_groups) and, when the gate is about
// something going wrong (an investigate gate, a failed step), the on-call
// group. Empty when there is nobody to mention.
func (n *Notifier) gateMentions(g *notify.Gate) string {
	var who []string
	for _, a := range g.Approvers {
		if role, ok := strings.CutPrefix(a, "role:"); ok {
			who = append(who, keysWithValue(n.groups, role, "<!subteam^%s>")...)
			continue
		}
		who = append(who, keysWithValue(n.users, a, "<@%s>")...)
	}
	who = dedupe(who)
	var parts []string
	if page := pagesOnCall(g.Kind); page && n.onCall != "" {
		parts = append(parts, "<!subteam^"+n.onCall+"> on call: "+pageReason(g.Kind))
	}
	if len(who) > 0 {
		parts = append(parts, strings.Join(who, " ")+" your decision is needed")
	}
	return strings.Join(parts, " · ")
}

// pagesOnCall: gates that open because something went wrong page on-call;
// promotion and remediation gates are the planned path.
func pagesOnCall(k notify.GateKind) bool {
	return k == notify.GateInvestigate || k == notify.GateApproval
}

func pageReason(k notify.GateKind) string {
	if k == notify.GateInvestigate {
		return "the watch found something to investigate"
	}
	return "a step failed and waits for a decision"
}

// keysWithValue are the keys of m whose value is v (case-insensitive, as
// identities compare), sorted, each formatted into a mention. Slack ids
// are [A-Z0-9]; anything else is not mentioned.
func keysWithValue(m map[string]string, v, format string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if strings.EqualFold(m[k], v) && slackID(k) {
			out = append(out, strings.Replace(format, "%s", k, 1))
		}
	}
	return out
}

func slackID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0]
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
