package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"go.temporal.io/sdk/client"
	"golang.org/x/term"
)

// gateMode says who decides open gates while a rollout is followed.
type gateMode int

const (
	// gatesByOthers: the follower only shows gates (approvers use Slack,
	// the CLI or the UI).
	gatesByOthers gateMode = iota
	// gatesDemo: the demo approvers decide every gate (--demo-auto-approve).
	gatesDemo
	// gatesAsk: the person at the terminal decides, as the demo approvers
	// (--interactive).
	gatesAsk
)

// follower follows one rollout until it ends: a redrawn progress display
// on a terminal (live), new timeline lines otherwise.
type follower struct {
	c     client.Client
	id    string
	out   io.Writer
	in    *bufio.Reader
	gates gateMode
	live  bool
	every time.Duration
	ui    string
	// result, when set, receives the final status as JSON (--json); out
	// then carries only the progress.
	result io.Writer

	printed int             // timeline entries printed (lines mode)
	drawn   int             // lines of the last live frame
	decided map[string]bool // gate/actor pairs already sent
}

// fallbackWidth is the live display's width when the terminal does not
// say (or out is not a terminal at all, as with --progress live to a pipe).
const fallbackWidth = 100

// terminal returns out's file descriptor when out is a terminal. /dev/null
// and pipes are not: the check asks the terminal driver, not the file mode.
func terminal(out io.Writer) (int, bool) {
	f, ok := out.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// termWidth is out's width in columns, read at every frame so a resized
// terminal gets a fitting display.
func termWidth(out io.Writer) int {
	if fd, ok := terminal(out); ok {
		if w, _, err := term.GetSize(fd); err == nil && w > 0 {
			return w
		}
	}
	return fallbackWidth
}

// progressMode resolves --progress auto|live|lines for stdout.
func progressMode(mode string, stdout io.Writer) (bool, error) {
	switch mode {
	case "live":
		return true, nil
	case "lines":
		return false, nil
	case "", "auto":
		_, ok := terminal(stdout)
		return ok && os.Getenv("TERM") != "dumb", nil
	}
	return false, usageError{msg: fmt.Sprintf("--progress %q: want auto, live or lines", mode)}
}

func (f *follower) run(ctx context.Context) error {
	if f.decided == nil {
		f.decided = map[string]bool{}
	}
	start := time.Now()
	for {
		st, err := queryStatus(ctx, f.c, f.id)
		if err != nil {
			return err
		}
		if f.live {
			f.draw(st, time.Since(start))
		} else {
			f.lines(st)
		}
		if st.State.Terminal() {
			return f.end(st)
		}
		if err := f.handleGates(ctx, st); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.every):
		}
	}
}

// end prints the outcome; a rollout that did not complete is a finding
// (exit 1), not a failure of the command.
func (f *follower) end(st *rollout.Status) error {
	fmt.Fprintf(f.out, "\n%s", st.Summary())
	if st.ReportPath != "" {
		fmt.Fprintf(f.out, "  completion report: %s\n", st.ReportPath)
	}
	fmt.Fprintf(f.out, "  report: %s report %s\n", programName, f.id)
	if f.result != nil {
		if err := writeJSON(f.result, st); err != nil {
			return err
		}
	}
	switch st.State {
	case rollout.StateCompleted, rollout.StateCompletedWithDebt, rollout.StateDryRunDone:
		return nil
	}
	return findingsError{fmt.Sprintf("rollout ended %s", st.State)}
}

// lines prints the timeline entries not printed yet.
func (f *follower) lines(st *rollout.Status) {
	from := max(f.printed-st.TimelineDropped, 0)
	for _, e := range st.Timeline[min(from, len(st.Timeline)):] {
		fmt.Fprintln(f.out, timelineLine(e))
	}
	f.printed = st.TimelineDropped + len(st.Timeline)
}

func timelineLine(e rollout.TimelineEntry) string {
	env := e.Environment
	if env == "" {
		env = "-"
	}
	return fmt.Sprintf("%s  %-11s %s", e.Time.Local().Format("15:04:05"), env, e.Message)
}

// frame is the live display: one line per environment with a progress
// bar, the monitor, open gates and the last few timeline lines.
func (f *follower) frame(st *rollout.Status, elapsed time.Duration) []string {
	var l []string
	l = append(l, fmt.Sprintf("fkrollout · %s · %s · phase %s · %s", f.id, st.State, st.Phase, elapsed.Truncate(time.Second)))
	if f.ui != "" {
		l = append(l, "UI: "+f.ui)
	}
	l = append(l, "")
	total := st.Planned() // a bounded status lists only the first constraints
	for _, env := range st.EnvironmentOrder {
		c := st.Counts(env)
		done := c[rollout.CTested] + c[rollout.CDebt]
		rep := st.Environments[env]
		phase := rep.Phase
		switch {
		case c[rollout.CRolledBack] > 0:
			phase = "rolled back"
		case rep.Done || (done == total && total > 0):
			phase = "done"
		case phase == "":
			phase = "waiting"
		}
		l = append(l, fmt.Sprintf("  %-12s %s %2d/%d  applied %d · validated %d · tested %d · debt %d   %s",
			env, progressBar(done, total, 20), done, total, c[rollout.CApplied]+c[rollout.CValidated]+done,
			c[rollout.CValidated]+done, c[rollout.CTested], c[rollout.CDebt], phase))
	}
	if m := st.Monitor; m != nil {
		line := "  monitor      " + m.Status
		if m.Deadline != nil && (m.Status == rollout.MonitorWatching || m.Status == rollout.MonitorWaiting) {
			line += " until " + m.Deadline.Local().Format("15:04:05")
		}
		if m.Rule != "" {
			line += " · rule " + m.Rule
		}
		l = append(l, line)
	}
	for _, g := range st.OpenGates {
		l = append(l, fmt.Sprintf("  ⏳ gate %s: %s [%s]", g.ID, g.Title, strings.Join(g.Choices, "|")))
	}
	l = append(l, "")
	tl := st.Timeline
	for _, e := range tl[max(len(tl)-6, 0):] {
		l = append(l, "  "+timelineLine(e))
	}
	return l
}

// bar is a fixed-width progress bar.
func progressBar(done, total, width int) string {
	n := 0
	if total > 0 {
		n = min(done*width/total, width)
	}
	return "[" + strings.Repeat("█", n) + strings.Repeat("░", width-n) + "]"
}

// draw replaces the previous frame in place (ANSI: cursor up, clear down).
func (f *follower) draw(st *rollout.Status, elapsed time.Duration) {
	lines := f.frame(st, elapsed)
	width := termWidth(f.out)
	var b strings.Builder
	if f.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dF\x1b[J", f.drawn)
	}
	for _, line := range lines {
		b.WriteString(truncateRunes(line, width))
		b.WriteString("\n")
	}
	io.WriteString(f.out, b.String())
	f.drawn = len(lines)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// handleGates decides open gates when the follower is asked to.
func (f *follower) handleGates(ctx context.Context, st *rollout.Status) error {
	for _, g := range st.OpenGates {
		switch f.gates {
		case gatesDemo:
			f.decideAsDemo(ctx, g, demoChoice(g), "demo auto-approve", "cli-demo")
		case gatesAsk:
			if f.decided[g.ID+"/asked"] {
				continue
			}
			f.decided[g.ID+"/asked"] = true
			choice, err := f.ask(g)
			if err != nil {
				return err
			}
			f.decideAsDemo(ctx, g, choice, "decided at the terminal (interactive demo)", "cli-interactive")
			f.drawn = 0 // the prompt scrolled the frame away: draw anew
		}
	}
	return nil
}

// decideAsDemo sends choice as the first demo approver and, while the gate
// still waits for votes, as the second: two identities the policy knows
// as different people, so four-eyes holds.
func (f *follower) decideAsDemo(ctx context.Context, g approval.Gate, choice, reason, via string) {
	for _, actor := range []string{demoApprover, demoApprover2} {
		key := g.ID + "/" + actor
		if f.decided[key] {
			continue
		}
		f.decided[key] = true
		view, err := decide(ctx, f.c, f.id, approval.DecisionInput{GateID: g.ID, Choice: choice, Actor: actor, Reason: reason, Via: via}, nil)
		if err != nil {
			f.say("demo: %s %s on %s refused: %v", actor, choice, g.ID, err)
			return
		}
		if view.Status != approval.GateOpen {
			return
		}
	}
}

func (f *follower) say(format string, args ...any) {
	if f.live {
		f.drawn = 0
	}
	fmt.Fprintf(f.out, format+"\n", args...)
}

// ask shows the gate and reads a choice from the terminal; Enter takes the
// default (what the demo approver would choose).
func (f *follower) ask(g approval.Gate) (string, error) {
	def := demoChoice(g)
	fmt.Fprintf(f.out, "\n── gate %s ── %s\n", g.ID, g.Title)
	if g.Summary != "" && g.Summary != g.Title {
		for _, line := range strings.Split(strings.TrimSpace(g.Summary), "\n") {
			fmt.Fprintf(f.out, "   %s\n", line)
		}
	}
	fmt.Fprintf(f.out, "   You decide as the demo approver %q (and %q adds a second vote where two are needed).\n", demoApprover, demoApprover2)
	for {
		fmt.Fprintf(f.out, "   choice [%s] (%s): ", def, strings.Join(g.Choices, ", "))
		line, err := f.in.ReadString('\n')
		choice := strings.TrimSpace(line)
		if err != nil && choice == "" {
			if err == io.EOF {
				fmt.Fprintf(f.out, "\n   end of input: %s\n", def)
				return def, nil
			}
			return "", fmt.Errorf("read gate choice: %w", err)
		}
		if choice == "" {
			return def, nil
		}
		if slices.Contains(g.Choices, choice) {
			return choice, nil
		}
		fmt.Fprintf(f.out, "   %q is not offered here\n", choice)
	}
}
