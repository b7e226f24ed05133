// Package report holds the pieces every fkrollout report is written with:
// escaped text and table cells, times and spans, state badges, the
// success-metrics and decisions tables. Rollout and fleet reports, the
// Temporal UI details, the CLI and Slack all render through it, so a name
// someone typed can never turn into markup and every report reads the same.
package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/mdtext"
)

// Text escapes user-supplied text for prose and headings.
func Text(s string) string { return mdtext.Markdown(s) }

// JoinText escapes each item and joins them.
func JoinText(items []string, sep string) string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = Text(it)
	}
	return strings.Join(out, sep)
}

// Cell is user text in a table cell: escaped, one line, "|" kept inside
// the cell, "—" when empty.
func Cell(s string) string { return OrDash(mdtext.TableCell(s)) }

// JoinCells escapes each item for a table cell and joins them.
func JoinCells(items []string, sep string) string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = mdtext.TableCell(it)
	}
	return strings.Join(out, sep)
}

// OrDash is s, or "—" when it is empty.
func OrDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// Stamp is a time in UTC to the second, "—" when unknown.
func Stamp(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// Span is the time from one instant to another in human units, "—" when
// either is unknown.
func Span(from, to time.Time) string {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return "—"
	}
	return Duration(to.Sub(from))
}

// Duration is d in the unit a person reads best at its size.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// Badge is the emoji and upper-case label of a run's state ("completed",
// "rolled-back", …); unknown states read as in progress.
func Badge(state string) (emoji, label string) {
	label = strings.ToUpper(strings.ReplaceAll(state, "-", " "))
	switch state {
	case "completed", "dry-run-completed":
		return "✅", label
	case "completed-with-debt":
		return "🟡", label
	case "rolled-back":
		return "↩️", label
	case "failed", "aborted", "rejected", "cancelled":
		return "❌", label
	case "completed-with-failures":
		return "⚠️", label
	case "waiting-for-approval", "waiting-for-window", "paused":
		return "⏸", label
	}
	return "⏳", label
}

// Metric is one line of a Success Metrics table. OK is nil while the
// figure is not known yet (pending). Phase (where it is proven) and
// Criteria (what counts as a pass, in words) are optional; when any row
// has them the table shows both columns.
type Metric struct {
	Name, Target, Actual string
	OK                   *bool
	Note                 string
	Phase, Criteria      string
}

// Passed is a known outcome for Metric.OK.
func Passed(v bool) *bool { return &v }

// Status is the status cell of a metric: ✅ PASS, ❌ FAIL or ⏳ PENDING,
// with the note.
func (m Metric) Status() string {
	status := "⏳ PENDING"
	if m.OK != nil && *m.OK {
		status = "✅ PASS"
	} else if m.OK != nil {
		status = "❌ FAIL"
	}
	if m.Note != "" {
		status += " (" + m.Note + ")"
	}
	return status
}

// WriteSuccessMetrics writes the Success Metrics section. Every cell is
// written as given: the caller escapes what a person or a database wrote
// (Phase and Criteria are the caller's own words).
func WriteSuccessMetrics(b *strings.Builder, rows []Metric) {
	b.WriteString("\n---\n\n## Success Metrics\n\n")
	if len(rows) == 0 {
		b.WriteString("Nothing measured yet.\n")
		return
	}
	phased := false
	for _, r := range rows {
		phased = phased || r.Phase != "" || r.Criteria != ""
	}
	if !phased {
		b.WriteString("| Metric | Target | Actual | Status |\n|---|---|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", r.Name, r.Target, r.Actual, r.Status())
		}
		return
	}
	b.WriteString("| Phase | Metric | Criteria | Target | Actual | Status |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", OrDash(r.Phase), r.Name, OrDash(r.Criteria), r.Target, r.Actual, r.Status())
	}
}

// Size is a byte count in the unit a person reads best.
func Size(n int64) string {
	switch {
	case n < 1024:
		return fmt.Sprintf("%d B", n)
	case n < 1024*1024:
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	case n < 1024*1024*1024:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1024*1024))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1024*1024*1024))
}
