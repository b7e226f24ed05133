package slackbot

import (
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// Block Kit limits we must stay under, or Slack rejects the whole message.
const (
	maxSectionText = 3000
	maxBlocks      = 50
	maxFKsShown    = 15
	maxSamples     = 5
)

// actionPrefix marks our buttons' action_id; the suffix is the choice.
const actionPrefix = "fkrollout:"

// reasonCallbackID identifies our reason modal in view_submission payloads.
const reasonCallbackID = "fkrollout_reason"

const (
	reasonBlockID  = "reason"
	reasonActionID = "reason_input"
)

// actionValue is the button payload: enough to address the Update, nothing secret.
type actionValue struct {
	RolloutID   string `json:"r"`
	GateID      string `json:"g"`
	Choice      string `json:"c"`
	Label       string `json:"l,omitempty"`
	NeedsReason bool   `json:"n,omitempty"`
}

func encodeValue(v actionValue) string {
	b, _ := json.Marshal(v) // strings and a bool cannot fail to marshal
	return string(b)
}

func decodeValue(s string) (actionValue, error) {
	var v actionValue
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return v, fmt.Errorf("decode button value: %w", err)
	}
	if v.RolloutID == "" || v.GateID == "" || v.Choice == "" {
		return v, fmt.Errorf("button value %q lacks rollout, gate or choice", s)
	}
	return v, nil
}

func gateChoices(g *Gate) []Choice {
	if len(g.Choices) > 0 {
		return g.Choices
	}
	return approval.DefaultChoices(g.Kind)
}

func findChoice(g *Gate, id string) (Choice, bool) {
	for _, c := range gateChoices(g) {
		if c.ID == id {
			return c, true
		}
	}
	return Choice{}, false
}

// StartedBlocks renders the thread parent.
func StartedBlocks(ev Event) []slack.Block {
	st := ev.Start
	if st == nil {
		st = &StartInfo{}
	}
	title := "FK rollout " + ev.RolloutID
	if st.DryRun {
		title += " (dry run)"
	}
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(truncate(title, 150))),
	}
	if st.PlanSummary != "" {
		blocks = append(blocks, section(esc(st.PlanSummary)))
	}
	fields := []*slack.TextBlockObject{
		mrkdwn("*Requester*\n" + esc(cmp.Or(st.Requester, "—"))),
		mrkdwn("*Environments*\n" + esc(cmp.Or(strings.Join(st.Environments, " → "), "—"))),
		mrkdwn(fmt.Sprintf("*Constraints*\n%d", st.Constraints)),
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil))
	blocks = append(blocks, footer(ev))
	return blocks
}

// GateBlocks renders an open gate with its buttons.
func GateBlocks(ev Event) []slack.Block {
	blocks := gateBody(ev)
	g := ev.Gate
	if g == nil {
		return blocks
	}
	var buttons []slack.BlockElement
	for _, c := range gateChoices(g) {
		b := slack.NewButtonBlockElement(actionPrefix+c.ID,
			encodeValue(actionValue{RolloutID: ev.RolloutID, GateID: g.ID, Choice: c.ID, Label: c.Label, NeedsReason: c.NeedsReason}),
			plain(c.Label))
		if c.Style != "" {
			b = b.WithStyle(slack.Style(c.Style))
		}
		if c.Confirm != "" {
			b = b.WithConfirm(slack.NewConfirmationBlockObject(
				plain(truncate(c.Label+"?", 100)), plain(truncate(c.Confirm, 300)),
				plain("Yes, "+strings.ToLower(c.Label)), plain("Cancel")))
		}
		buttons = append(buttons, b)
	}
	if g.Block != "" {
		blocks = append(blocks, howToBlock(g.Block))
	}
	return append(blocks, slack.NewActionBlock(truncate("fkr_actions:"+g.ID, 255), buttons...))
}

// howToBlockID marks the "how to decide" section: it goes with the buttons
// once the gate is decided.
const howToBlockID = "fkr_howto"

// howToBlock shows the workflow's gate block verbatim (a code block keeps
// the lines and the payload as the CLI prints them).
func howToBlock(text string) slack.Block {
	return slack.NewSectionBlock(mrkdwn("```"+esc(truncate(text, 2900))+"```"), nil, nil, slack.SectionBlockOptionBlockID(howToBlockID))
}

// gateBody is the gate message without buttons: what stays after a decision.
func gateBody(ev Event) []slack.Block {
	g := ev.Gate
	if g == nil {
		return []slack.Block{section("Gate (no details)")}
	}
	title := g.Title
	if title == "" {
		title = fmt.Sprintf("%s gate", titleCase(string(g.Kind)))
		if ev.Environment != "" {
			title += " · " + ev.Environment
		}
	}
	blocks := []slack.Block{slack.NewHeaderBlock(plain(truncate(":vertical_traffic_light: "+title, 150)))}
	if g.Summary != "" {
		blocks = append(blocks, section(esc(g.Summary)))
	}
	switch {
	case g.Remediation != nil:
		blocks = append(blocks, remediationBlocks(g.Remediation)...)
	case g.Promotion != nil:
		blocks = append(blocks, promotionBlocks(g.Promotion)...)
	case g.Investigate != nil:
		blocks = append(blocks, investigateBlocks(g.Investigate)...)
	}
	blocks = append(blocks, footer(ev))
	return capBlocks(blocks, maxBlocks-2) // leave room for actions and decision
}

func remediationBlocks(r *RemediationData) []slack.Block {
	var total int64
	for _, fk := range r.FKs {
		total += fk.Orphans
	}
	blocks := []slack.Block{section(fmt.Sprintf("*%d orphan rows* across *%d* foreign keys. Choose how to remediate before VALIDATE.", total, len(r.FKs)))}
	for i, fk := range r.FKs {
		if i == maxFKsShown {
			blocks = append(blocks, contextBlock(fmt.Sprintf("…and %d more foreign keys (see the status query).", len(r.FKs)-maxFKsShown)))
			break
		}
		var b strings.Builder
		fmt.Fprintf(&b, "*%s*: `%s(%s)` → `%s` · *%d* orphans",
			esc(fk.Constraint), esc(fk.Table), esc(strings.Join(fk.Columns, ", ")), esc(fk.RefTable), fk.Orphans)
		if !fk.Nullable {
			b.WriteString(" · not nullable")
		}
		if len(fk.Samples) > 0 {
			s := fk.Samples
			if len(s) > maxSamples {
				s = s[:maxSamples]
			}
			quoted := make([]string, len(s))
			for j, v := range s {
				quoted[j] = "`" + esc(truncate(v, 80)) + "`"
			}
			b.WriteString("\nsamples: " + strings.Join(quoted, ", "))
			if len(fk.Samples) > maxSamples {
				fmt.Fprintf(&b, " …")
			}
		}
		if fk.Export != "" {
			b.WriteString("\nfull list on the worker: `" + esc(truncate(fk.Export, 200)) + "`")
		}
		writeImpact(&b, fk)
		blocks = append(blocks, section(b.String()))
	}
	return blocks
}

// writeImpact adds what remediating would touch elsewhere and the choices
// that are impossible, with their reasons.
func writeImpact(b *strings.Builder, fk OrphanReport) {
	for i, d := range fk.Dependents {
		if i == maxSamples {
			fmt.Fprintf(b, "\n…and %d more dependent tables", len(fk.Dependents)-maxSamples)
			break
		}
		fmt.Fprintf(b, "\n↳ `%s` via `%s` (%s): *%d* rows", esc(d.Table), esc(d.Constraint), esc(d.Action), d.Rows)
	}
	if len(fk.Triggers) > 0 {
		b.WriteString("\ntriggers: `" + esc(strings.Join(fk.Triggers, "`, `")) + "`")
	}
	choices := make([]string, 0, len(fk.Impossible))
	for c := range fk.Impossible {
		choices = append(choices, c)
	}
	sort.Strings(choices)
	for _, c := range choices {
		fmt.Fprintf(b, "\n✗ %s: %s", esc(c), esc(truncate(fk.Impossible[c], 200)))
	}
}

func promotionBlocks(p *PromotionData) []slack.Block {
	var blocks []slack.Block
	head := fmt.Sprintf("*Staging results* (%s → %s)", esc(cmp.Or(p.From, "—")), esc(cmp.Or(p.To, "—")))
	blocks = append(blocks, section(head))

	v := fmt.Sprintf("*Validated constraints (%d)*\n%s", len(p.Validated), esc(listOrNone(p.Validated)))
	if len(p.NotValid) > 0 {
		v += fmt.Sprintf("\n*Left NOT VALID (%d)*\n%s", len(p.NotValid), esc(listOrNone(p.NotValid)))
	}
	blocks = append(blocks, section(v))

	passed := 0
	var tl strings.Builder
	for _, t := range p.Tests {
		mark := ":white_check_mark:"
		if t.Passed {
			passed++
		} else {
			mark = ":x:"
		}
		fmt.Fprintf(&tl, "\n%s %s", mark, esc(t.Name))
		if t.Detail != "" {
			fmt.Fprintf(&tl, " — %s", esc(t.Detail))
		}
	}
	blocks = append(blocks, section(fmt.Sprintf("*Behaviour tests: %d/%d passed*%s", passed, len(p.Tests), tl.String())))

	if len(p.Perf) > 0 {
		var tb strings.Builder
		fmt.Fprintf(&tb, "%-28s %10s %10s %10s  %s\n", "Operation", "Baseline", "With FKs", "Overhead", "OK")
		for _, r := range p.Perf {
			ok := "yes"
			if !r.Acceptable {
				ok = "NO"
			}
			if r.Overhead != "" {
				// Interleaved comparison: the overhead with its interval.
				fmt.Fprintf(&tb, "%-28s %8.1fms %8.1fms  %s  %s\n",
					truncate(r.Operation, 28), r.BaselineMS, r.WithFKsMS, r.Overhead, r.Verdict)
				continue
			}
			fmt.Fprintf(&tb, "%-28s %8.1fms %8.1fms %+8.1fms  %s\n",
				truncate(r.Operation, 28), r.BaselineMS, r.WithFKsMS, overheadMS(r), ok)
		}
		blocks = append(blocks, section("*Performance overhead*\n```"+esc(tb.String())+"```"))
	}
	if len(p.Warnings) > 0 {
		blocks = append(blocks, section(":warning: *Warnings*\n• "+esc(strings.Join(p.Warnings, "\n• "))))
	}
	return blocks
}

func investigateBlocks(inv *InvestigateData) []slack.Block {
	text := fmt.Sprintf(":mag: *Decision-matrix rule:* %s\n%s", esc(cmp.Or(inv.Rule, "—")), figuresText(inv.Figures))
	return []slack.Block{section(text)}
}

func figuresText(figs []Figure) string {
	var b strings.Builder
	for _, f := range figs {
		fmt.Fprintf(&b, "• %s: *%s* (threshold %s)\n", esc(f.Name), esc(formatFigure(f.Value, f.Unit)), esc(formatFigure(f.Threshold, f.Unit)))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// DecidedBlocks turns a gate message into its decided form: every actions
// block and the how-to-decide section are dropped (so the channel never
// shows a live button or a stale instruction on a closed gate) and the
// decision line is appended.
func DecidedBlocks(body []slack.Block, d GateDecision) []slack.Block {
	out := make([]slack.Block, 0, len(body)+1)
	for _, b := range body {
		if b.BlockType() == slack.MBTAction || b.ID() == howToBlockID {
			continue
		}
		out = append(out, b)
	}
	return append(out, section(DecisionText(d)))
}

// VoteBlocks records a vote on a gate that needs more approvers: the vote
// line goes above the buttons, which stay live for the next approver.
func VoteBlocks(body []slack.Block, d GateDecision, waiting int) []slack.Block {
	line := contextBlock(fmt.Sprintf("%s · %d more approver(s) needed", DecisionText(d), waiting))
	out := make([]slack.Block, 0, len(body)+1)
	inserted := false
	for _, b := range body {
		if !inserted && b.BlockType() == slack.MBTAction {
			out = append(out, line)
			inserted = true
		}
		out = append(out, b)
	}
	if !inserted {
		out = append(out, line)
	}
	return out
}

// DecisionText is the one line shown in place of the buttons.
func DecisionText(d GateDecision) string {
	who := esc(cmp.Or(d.Actor, "—"))
	if slackUserID.MatchString(d.SlackUser) {
		who = "<@" + d.SlackUser + ">"
	}
	at := slackDate(d.Time)
	var s string
	switch d.Choice {
	case approval.ChoiceApprove:
		s = fmt.Sprintf(":white_check_mark: Approved by %s at %s", who, at)
	case approval.ChoiceReject:
		s = fmt.Sprintf(":x: Rejected by %s at %s", who, at)
	case string(approval.GateCancelled):
		// Closed by the rollout itself (stopped or cancelled): no decision.
		s = fmt.Sprintf(":no_entry_sign: Gate closed without a decision at %s", at)
	default:
		s = fmt.Sprintf(":ballot_box_with_check: *%s* chosen by %s at %s", esc(approval.Label(d.Choice)), who, at)
	}
	if d.Via != "" && d.Via != "slack" {
		s += " (via " + esc(d.Via) + ")"
	}
	if d.Reason != "" {
		s += "\n>" + esc(truncate(strings.ReplaceAll(d.Reason, "\n", " "), 1000))
	}
	return s
}

// RollbackBlocks renders a rollback: the rule that fired, its figures, and a
// mention of the on-call user group so a human looks at it now.
func RollbackBlocks(ev Event, onCallGroup string) []slack.Block {
	rb := ev.Rollback
	if rb == nil {
		rb = &RollbackInfo{}
	}
	head := ":rotating_light: *Rolled back*"
	if ev.Environment != "" {
		head += " in *" + esc(ev.Environment) + "*"
	}
	if onCallGroup != "" {
		head += " — <!subteam^" + onCallGroup + ">"
	}
	var b strings.Builder
	b.WriteString(head)
	if rb.Manual {
		fmt.Fprintf(&b, "\nManual rollback by %s", esc(cmp.Or(rb.Actor, "—")))
	}
	fmt.Fprintf(&b, "\n*Rule:* %s", esc(cmp.Or(rb.Rule, "—")))
	if rb.Reason != "" {
		fmt.Fprintf(&b, "\n*Reason:* %s", esc(rb.Reason))
	}
	if figs := figuresText(rb.Figures); figs != "" {
		b.WriteString("\n" + figs)
	}
	blocks := []slack.Block{section(b.String())}
	if len(rb.Constraints) > 0 {
		blocks = append(blocks, section(fmt.Sprintf("*Constraints dropped (%d)*\n%s", len(rb.Constraints), esc(listOrNone(rb.Constraints)))))
	}
	return append(blocks, footer(ev))
}

// LineBlocks renders phase, completion and failure replies.
func LineBlocks(ev Event) []slack.Block {
	icon := map[EventKind]string{
		KindPhase:       ":arrow_forward:",
		KindCompleted:   ":tada:",
		KindFailed:      ":boom:",
		KindGateDecided: ":ballot_box_with_check:",
	}[ev.Kind]
	text := ev.Text
	if text == "" {
		text = strings.TrimSpace(ev.Phase + " " + ev.Environment)
	}
	where := ""
	if ev.Phase != "" || ev.Environment != "" {
		where = fmt.Sprintf(" _%s_", esc(strings.TrimSpace(ev.Environment+" "+ev.Phase)))
	}
	return []slack.Block{section(strings.TrimSpace(icon + where + " " + esc(text)))}
}

// ReasonModal asks for a reason before a choice that needs one (reject,
// abort, rollback). meta travels in private_metadata back to us.
func ReasonModal(choiceLabel string, meta string) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(plain("Why?"), reasonActionID)
	input.Multiline = true
	input.MaxLength = 1000
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      reasonCallbackID,
		Title:           plain(truncate(choiceLabel, 24)),
		Submit:          plain(truncate(choiceLabel, 24)),
		Close:           plain("Cancel"),
		PrivateMetadata: meta,
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock(reasonBlockID, plain("Reason (recorded in the rollout history)"), nil, input),
		}},
	}
}

func footer(ev Event) slack.Block {
	parts := []string{"rollout `" + esc(ev.RolloutID) + "`"}
	if ev.Environment != "" {
		parts = append(parts, "env *"+esc(ev.Environment)+"*")
	}
	if ev.Phase != "" {
		parts = append(parts, "phase *"+esc(ev.Phase)+"*")
	}
	if ev.UILink != "" {
		parts = append(parts, "<"+linkTarget(ev.UILink)+"|Open in Temporal UI>")
	}
	return contextBlock(strings.Join(parts, " · "))
}

func slackDate(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	fallback := t.UTC().Format("2006-01-02 15:04:05 UTC")
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), fallback)
}

func formatFigure(v float64, unit string) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s + unit
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, true, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(s, 2000), false, false)
}

func section(s string) *slack.SectionBlock {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, truncate(s, maxSectionText), false, false), nil, nil)
}

func contextBlock(s string) *slack.ContextBlock {
	return slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType, truncate(s, 2000), false, false))
}

func capBlocks(b []slack.Block, n int) []slack.Block {
	if len(b) <= n {
		return b
	}
	return append(b[:n-1], contextBlock(fmt.Sprintf("…%d more blocks omitted", len(b)-n+1)))
}

// esc escapes the three characters mrkdwn treats as control characters, so
// plan names, table names, reasons or ids cannot forge mentions or links.
// Every user- or plan-supplied string that goes into mrkdwn (sections,
// context blocks, fields, message text, response_url answers) goes through it.
func esc(s string) string { return mdtext.Slack(s) }

// slackUserID is the shape of a Slack user ID. A decision's slack_user comes
// from any client (the CLI may name one): only a real ID becomes a mention,
// anything else is shown as text.
var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

// linkTarget makes a URL safe inside <url|label>: "|" would end the URL
// and start the label, and &, <, > must be escaped like all mrkdwn.
func linkTarget(u string) string {
	return esc(strings.ReplaceAll(u, "|", "%7C"))
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return truncate(strings.Join(l, ", "), 2500)
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
