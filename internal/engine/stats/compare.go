package stats

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Row is one line of the status report's "Database Metrics" table.
type Row struct {
	Metric string `json:"metric"`
	Before string `json:"before"`
	After  string `json:"after"`
	// Change is "No change", "+5,600%", "-50%", "+3" (from zero, where a
	// percentage is undefined) or "n/a" (not measured on one side).
	Change string `json:"change"`
}

// NoChange is the Change text of an unchanged metric in the report table.
const NoChange = "No change"

// Compare lays two snapshots side by side in the order of the report table
// (Foreign Keys first, Orphaned Records last).
func Compare(before, after Snapshot) []Row {
	rows := []Row{
		intRow("Foreign Keys", before.ForeignKeys, after.ForeignKeys),
		intRow("Validated Foreign Keys", before.ForeignKeysValidated, after.ForeignKeysValidated),
		intRow("NOT VALID Foreign Keys", before.ForeignKeysNotValid, after.ForeignKeysNotValid),
		intRow("CHECK Constraints", before.CheckConstraints, after.CheckConstraints),
		intRow("Unique Indexes", before.UniqueIndexes, after.UniqueIndexes),
		intRow("Partial Unique Index", before.PartialUniqueIndexes, after.PartialUniqueIndexes),
		intRow("Tables", before.Tables, after.Tables),
	}
	orphans := Row{Metric: "Orphaned Records", Before: optInt(before.Orphans), After: optInt(after.Orphans), Change: "n/a"}
	if before.Orphans != nil && after.Orphans != nil {
		orphans.Change = change(*before.Orphans, *after.Orphans)
	}
	return append(rows, orphans)
}

func intRow(metric string, before, after int) Row {
	return Row{Metric: metric, Before: group(int64(before)), After: group(int64(after)), Change: change(int64(before), int64(after))}
}

func optInt(p *int64) string {
	if p == nil {
		return "not measured"
	}
	return group(*p)
}

// change renders the relative change as a percentage: 1 → 57 is
// "+5,600%". From zero there is no percentage, so the absolute delta is shown.
func change(before, after int64) string {
	d := after - before
	switch {
	case d == 0:
		return NoChange
	case before == 0:
		return sign(d) + group(abs(d))
	}
	pct := float64(d) * 100 / float64(before)
	r := math.Round(pct)
	if r == 0 || (math.Abs(pct) < 10 && pct != r) {
		// Small changes keep one decimal so they do not round to "+0%".
		return sign(d) + strconv.FormatFloat(math.Abs(pct), 'f', 1, 64) + "%"
	}
	return sign(d) + group(int64(math.Abs(r))) + "%"
}

func sign(d int64) string {
	if d < 0 {
		return "-"
	}
	return "+"
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// group writes n with thousands separators: 5600 → "5,600".
func group(n int64) string {
	s := strconv.FormatInt(abs(n), 10)
	var b strings.Builder
	if n < 0 {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RenderMarkdown renders rows as the "Database Metrics" table of the
// completion report; a changed After value is bold so it stands out.
func RenderMarkdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| Metric | Before | After | Change |\n")
	b.WriteString("|--------|--------|-------|--------|\n")
	for _, r := range rows {
		after := cell(r.After)
		if r.Change != NoChange && r.Change != "n/a" {
			after = "**" + after + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", cell(r.Metric), cell(r.Before), after, cell(r.Change))
	}
	return b.String()
}

func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
