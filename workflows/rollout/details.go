package rollout

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// What a release owner and an SRE read without opening anything: the
// current details in the Temporal UI, the gate block that the CLI `status`
// and the Slack gate message share, and the static summary a start names.

// BlockStyle is how a gate block is marked up.
type BlockStyle int

const (
	// BlockText is plain lines: the CLI and Slack (in a code block there,
	// so both show the same characters).
	BlockText BlockStyle = iota
	// BlockMarkdown is the Temporal UI's current details: one list item per
	// line (the UI joins plain lines into one paragraph) and the Update
	// payload in a code block, so it copies cleanly.
	BlockMarkdown
)

// StaticSummary is the one line a start names the rollout with: the CLI
// sets it, and README gives it to paste into the UI's Summary field.
func StaticSummary(planName string, in Input) string {
	envs := make([]string, 0, len(in.Environments))
	for _, e := range in.Environments {
		envs = append(envs, e.Name)
	}
	what := "FK rollout"
	if planName != "" {
		what += " " + planName
	}
	if in.DryRun {
		what += " (dry run)"
	}
	return fmt.Sprintf("%s: %s, requested by %s", what, strings.Join(envs, " → "), in.Requester)
}

// Progress is one environment's constraints, cumulative: a validated
// constraint was also applied, a tested one also validated.
type Progress struct {
	Planned, Applied, Validated, Tested, Debt, Skipped, RolledBack int
}

// Progress counts env's constraints cumulatively.
func (s *Status) Progress(env string) Progress {
	var p Progress
	// Counts, not the listed rows: a bounded copy lists only the first.
	//workflowcheck:ignore (sums: order-free)
	for state, n := range s.Counts(env) {
		p.Planned += n
		switch state {
		case CTested:
			p.Tested += n
			p.Validated += n
			p.Applied += n
		case CValidated:
			p.Validated += n
			p.Applied += n
		case CApplied, CDebt:
			p.Applied += n
		}
		switch state {
		case CDebt:
			p.Debt += n
		case CSkipped:
			p.Skipped += n
		case CRolledBack:
			p.RolledBack += n
		}
	}
	return p
}

// HeadLine is the first line of every view: state, phase, environment.
func (s *Status) HeadLine() string {
	env := s.Environment
	if g, ok := s.openPromotion(); ok && g.Detail != nil && g.Detail.Promotion != nil {
		env = g.Detail.Promotion.From + " → " + g.Detail.Promotion.To
	}
	line := fmt.Sprintf("%s · phase %s", s.State, s.Phase)
	if env != "" {
		line += " · " + env
	}
	if s.Paused {
		line += " · paused"
	}
	return line
}

func (s *Status) openPromotion() (approval.Gate, bool) {
	for _, g := range s.OpenGates {
		if g.Kind == notify.GatePromotion {
			return g, true
		}
	}
	return approval.Gate{}, false
}

// gateDecides says in one sentence what a gate kind decides.
var gateDecides = map[notify.GateKind]string{
	notify.GatePromotion:   "whether the next environment starts",
	notify.GateRemediation: "what happens to the orphaned rows before VALIDATE",
	notify.GateApproval:    "how the rollout goes on after a failed step",
	notify.GateInvestigate: "whether production keeps the constraints after the monitor's finding",
}

// GateBlock renders one open gate: what it decides, who may decide, the
// votes, the deadline and the exact ways to decide it.
func (s *Status) GateBlock(g approval.Gate, style BlockStyle) string {
	code := func(v string) string {
		if style == BlockMarkdown {
			return "`" + v + "`"
		}
		return v
	}
	var lines []string
	add := func(format string, a ...any) { lines = append(lines, fmt.Sprintf(format, a...)) }
	// Related facts share a line, so the block fits the UI's details panel.
	head := fmt.Sprintf("Gate %s: %s", code(g.ID), g.Title)
	if d := gateDecides[g.Kind]; d != "" {
		head += " (decides " + d + ")"
	}
	add("%s", head)
	add("Choices: %s", strings.Join(g.Choices, " | "))
	add("Who: %s", s.whoMayDecide(g))
	deadline := "Deadline: none (waits)"
	if g.Deadline != nil {
		deadline = fmt.Sprintf("Deadline: %s → %s", g.Deadline.UTC().Format("2006-01-02 15:04 UTC"), g.Rule.OnTimeout)
	}
	add("Votes: %s · %s", votesLine(g), deadline)
	if r, ok := s.lastRefusal(g.ID); ok {
		add("Last refused: %s: %s", r.Actor, r.Reason)
	}
	payload := decidePayload(g)
	add("UI: Send Update %s with:", code(approval.UpdateDecide))
	if style == BlockMarkdown {
		// Two lines (still valid JSON): one line is wider than the UI's
		// panel, and the frame's scrollbar then hides the last line.
		lines = append(lines, "```\n"+strings.Replace(payload, `,"actor"`, `,`+"\n"+` "actor"`, 1)+"\n```")
	} else {
		lines = append(lines, "  "+payload)
	}
	if s.Policy != nil && s.Policy.Mode == "strict" {
		add("(strict mode: the UI cannot sign, so decide with the CLI's --key or from Slack)")
	}
	add("CLI: %s", code(fmt.Sprintf("fkrollout decide %s %s %s --reason \"…\"", s.RolloutID, g.ID, g.Choices[0])))
	if link := slackLink(g.Message, s.Thread); link != "" {
		add("Slack: %s", link)
	}
	if style == BlockMarkdown {
		for i, l := range lines {
			if !strings.HasPrefix(l, "```") {
				lines[i] = "- " + l
			}
		}
	}
	return strings.Join(lines, "\n")
}

// whoMayDecide is the gate's rule (resolved from the effective policy when
// the gate opened) in words: approvers, how many, and four-eyes.
func (s *Status) whoMayDecide(g approval.Gate) string {
	who := approval.NoneIfEmpty(g.Rule.Approvers)
	if len(g.Rule.Approvers) == 0 {
		who = "anyone"
		if s.Policy != nil && s.Policy.Mode == "strict" {
			who = "nobody (no approvers configured)"
		}
	}
	line := fmt.Sprintf("%s; %d distinct approval(s) to proceed", who, max(g.Rule.MinApprovals, 1))
	if !g.Rule.AllowRequester && s.Requester != "" {
		line += fmt.Sprintf("; not %s (requester) except %s", s.Requester, strings.Join(conservativeOf(g.Choices), "/"))
	}
	return line
}

func conservativeOf(choices []string) []string {
	var out []string
	for _, c := range choices {
		if approval.Conservative(c) {
			out = append(out, c)
		}
	}
	return out
}

// votesLine is "1 of 2 for approve (alice@example.com)" or "none yet".
func votesLine(g approval.Gate) string {
	if len(g.Votes) == 0 {
		return fmt.Sprintf("none yet (%d needed to proceed)", max(g.Rule.MinApprovals, 1))
	}
	by := map[string][]string{}
	var order []string
	for _, v := range g.Votes {
		if _, ok := by[v.Action]; !ok {
			order = append(order, v.Action)
		}
		by[v.Action] = append(by[v.Action], v.Actor)
	}
	parts := make([]string, 0, len(order))
	for _, c := range order {
		parts = append(parts, fmt.Sprintf("%d of %d for %s (%s)", len(by[c]), max(g.Rule.MinApprovals, 1), c, strings.Join(by[c], ", ")))
	}
	return strings.Join(parts, "; ")
}

func (s *Status) lastRefusal(gateID string) (approval.Refusal, bool) {
	for i := len(s.Refusals) - 1; i >= 0; i-- {
		if s.Refusals[i].GateID == gateID {
			return s.Refusals[i], true
		}
	}
	return approval.Refusal{}, false
}

// decidePayload is the decide Update's input to paste in the UI, on one
// line; the human fills in actor and reason.
func decidePayload(g approval.Gate) string {
	b, _ := json.Marshal(struct {
		GateID string `json:"gate_id"`
		Choice string `json:"choice"`
		Actor  string `json:"actor"`
		Reason string `json:"reason"`
		Via    string `json:"via"`
	}{g.ID, g.Choices[0], "you@example.com", "why", "ui"})
	return string(b)
}

// slackLink is the gate message's permalink (slack.com redirects to the
// workspace), or "" when the gate was not posted to Slack.
func slackLink(msg, thread notify.MessageRef) string {
	if msg.IsZero() {
		return ""
	}
	link := fmt.Sprintf("https://slack.com/archives/%s/p%s", msg.Channel, strings.ReplaceAll(msg.TS, ".", ""))
	if !thread.IsZero() && thread.TS != msg.TS {
		link += "?thread_ts=" + thread.TS + "&cid=" + msg.Channel
	}
	return link
}

// windowLine says when a waited-for window opens, in its zone and UTC.
func (s *Status) windowLine() string {
	if s.State != StateWaitingForWindow {
		return ""
	}
	rep := s.Environments[s.Environment]
	if rep.WindowOpens == nil {
		return ""
	}
	opens := *rep.WindowOpens
	local := opens.Format("2006-01-02 15:04 -0700")
	if loc, err := time.LoadLocation(rep.WindowZone); err == nil && rep.WindowZone != "" {
		local = opens.In(loc).Format("2006-01-02 15:04 ") + rep.WindowZone
	}
	return fmt.Sprintf("Window: %s opens %s (%s)", s.Environment, local, opens.UTC().Format("2006-01-02 15:04 UTC"))
}

// Markdown is the workflow's current details in the Temporal UI: the head
// line, the open gates' blocks, progress, then what else matters now.
func (s *Status) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**", s.HeadLine())
	if s.Policy != nil && s.Policy.Mode == "development" {
		// On the head line: a paragraph of its own would push the progress
		// table out of the UI's details panel.
		b.WriteString(" · ⚠️ development mode: unsigned decisions accepted")
	}
	b.WriteString("\n")
	for _, g := range s.OpenGates {
		b.WriteString("\n" + s.GateBlock(g, BlockMarkdown) + "\n")
	}
	if w := s.windowLine(); w != "" {
		b.WriteString("\n⏰ " + w + "\n")
	}
	// One line, not a table: the UI's details panel is about 330 px high.
	parts := make([]string, 0, len(s.EnvironmentOrder))
	for _, env := range s.EnvironmentOrder {
		p := s.Progress(env)
		part := fmt.Sprintf("%s %d/%d/%d/%d", env, p.Planned, p.Applied, p.Validated, p.Tested)
		if p.Debt > 0 {
			part += fmt.Sprintf(" (debt %d)", p.Debt)
		}
		parts = append(parts, part)
	}
	if len(parts) > 0 {
		b.WriteString("\nProgress (planned/applied/validated/tested): " + strings.Join(parts, " · ") + "\n")
	}
	if pm := strings.TrimSpace(s.perfMarkdown()); pm != "" {
		b.WriteString("\n" + pm + "\n")
	}
	if s.Monitor != nil {
		b.WriteString("\n" + strings.TrimSpace(s.Monitor.markdown()) + "\n")
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "\n❌ %s\n", s.Error)
	}
	// A last, empty paragraph: the UI sizes its details frame about one line
	// short of the content, and this is the line it cuts.
	return strings.TrimRight(b.String(), "\n") + "\n\n\u00a0"
}

// Summary is the plain status: CLI status and watch, the Slack slash
// command. Open gates show the same block as their Slack message.
func (s *Status) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %s: %s\n", s.RolloutID, s.HeadLine())
	if len(s.SafeguardsOff) > 0 {
		fmt.Fprintf(&b, "  safeguards off: %s\n", strings.Join(s.SafeguardsOff, ", "))
	}
	for _, env := range s.EnvironmentOrder {
		p := s.Progress(env)
		fmt.Fprintf(&b, "  %-12s planned %d, applied %d, validated %d, tested %d", env, p.Planned, p.Applied, p.Validated, p.Tested)
		for _, x := range []struct {
			n    int
			name string
		}{{p.Debt, "debt"}, {p.Skipped, "skipped"}, {p.RolledBack, "rolled back"}} {
			if x.n > 0 {
				fmt.Fprintf(&b, ", %s %d", x.name, x.n)
			}
		}
		b.WriteString("\n")
	}
	if w := s.windowLine(); w != "" {
		b.WriteString("  " + w + "\n")
	}
	for _, g := range s.OpenGates {
		b.WriteString("  open gate " + g.ID + "\n")
		b.WriteString(indent(s.GateBlock(g, BlockText), "    ") + "\n")
	}
	if m := s.Monitor; m != nil {
		fmt.Fprintf(&b, "  monitor: %s", m.Status)
		if m.Rule != "" {
			fmt.Fprintf(&b, " (rule %s)", m.Rule)
		}
		if m.Reason != "" {
			fmt.Fprintf(&b, ": %s", m.Reason)
		}
		b.WriteString("\n")
	}
	if s.Error != "" {
		fmt.Fprintf(&b, "  error: %s\n", s.Error)
	}
	return b.String()
}

func indent(text, prefix string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

// gateBlockFor renders an open gate as the Slack message carries it (at
// the time it opens; the CLI re-renders it from status).
func (w *rollout) gateBlockFor(g *approval.Gate) string {
	s := w.snapshot()
	return s.GateBlock(*g, BlockText)
}
