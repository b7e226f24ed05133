package discover

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// foreignKeyName is PostgreSQL's choice for an unnamed foreign key:
// plan.DefaultForeignKeyName, or the first free of _fkey1, _fkey2, …
func foreignKeyName(table string, cols []string, taken func(string) bool) string {
	name := plan.DefaultForeignKeyName(table, cols)
	for n := 1; taken(name); n++ {
		name = objectName(table, cols, "fkey"+strconv.Itoa(n))
	}
	return name
}

// objectName is PostgreSQL's makeObjectName(table, columns joined by "_",
// label) in 63 bytes: the longer part is shortened first. With label
// "fkey" it equals plan.DefaultForeignKeyName (a test holds it to that).
func objectName(table string, cols []string, label string) string {
	const maxLen = 63
	var b strings.Builder
	for _, c := range cols {
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		b.WriteString(c[:min(len(c), maxLen)])
		if b.Len() >= maxLen+1 {
			break
		}
	}
	addition := b.String()
	avail := maxLen - (len(label) + 1) - 1
	n1, n2 := len(table), len(addition)
	for n1+n2 > avail {
		if n1 > n2 {
			n1--
		} else {
			n2--
		}
	}
	return clip(table, n1) + "_" + clip(addition, n2) + "_" + label
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// ForeignKey is the candidate as a plan foreign key, its evidence as the
// comment above it in the migration.
func (c Candidate) ForeignKey() plan.ForeignKey {
	pr := plan.PriorityLow
	_ = pr.UnmarshalText([]byte(c.Priority))
	return plan.ForeignKey{
		Name:       c.Name,
		Table:      plan.TableName{Schema: c.Schema, Name: c.Table},
		Columns:    c.Columns,
		RefTable:   plan.TableName{Schema: c.RefSchema, Name: c.RefTable},
		RefColumns: c.RefColumns,
		OnDelete:   plan.Action(c.OnDelete),
		Priority:   pr,
		Comment:    c.comment(),
	}
}

// comment is the evidence in a few lines a reviewer reads above the
// statement: why, how sure, what the rollout will find.
func (c Candidate) comment() string {
	e := c.Evidence
	lines := []string{fmt.Sprintf("%s: confidence %.2f, priority %s", c.String(), c.Confidence, c.Priority)}
	if e.NameMatch != MatchNone {
		lines = append(lines, fmt.Sprintf("name: %s (%s)", e.NameMatch, e.NameDetail))
	} else {
		lines = append(lines, "name: no evidence; the data alone carries it")
	}
	how := "sample"
	if e.Exact {
		how = "exact"
	}
	lines = append(lines, fmt.Sprintf("data: %.1f%% of %d distinct values found (%s); covers %.1f%% of %d parent keys; %.1f%% NULL",
		100*e.InclusionRatio, e.DistinctValues, how, 100*e.Coverage, e.ParentRows, 100*e.NullFraction))
	orphans := fmt.Sprintf("orphans: %d row(s), %d distinct value(s)", c.Orphans.Rows, c.Orphans.Distinct)
	if !c.Orphans.Exact {
		orphans = fmt.Sprintf("orphans: about %d distinct value(s) in the sample (not counted exactly)", c.Orphans.Distinct)
	}
	lines = append(lines, orphans)
	if c.Index.Supports {
		lines = append(lines, "index: "+c.Index.Name+" supports it")
	} else {
		lines = append(lines, "index: none supports it; consider "+c.Index.Suggested)
	}
	if len(e.Competing) > 0 {
		names := make([]string, len(e.Competing))
		for i, k := range e.Competing {
			names[i] = k.Parent
		}
		lines = append(lines, "values also fit: "+listSome(names))
	}
	return strings.Join(lines, "\n")
}

// Plan is the accepted candidates as a plan named name, in priority order
// and, within a priority, by rank.
func Plan(rep Report, name string) plan.Plan {
	fks := make([]plan.ForeignKey, len(rep.Candidates))
	for i, c := range rep.Candidates {
		fks[i] = c.ForeignKey()
	}
	sort.SliceStable(fks, func(i, j int) bool { return fks[i].Priority < fks[j].Priority })
	return plan.Plan{Name: name, ForeignKeys: fks}
}

// Migration renders the accepted candidates as the migration the rollout
// takes (plan.Generate: NOT VALID under Priority headers, then VALIDATE),
// or "" when there are none.
func Migration(rep Report, name string) string {
	if len(rep.Candidates) == 0 {
		return ""
	}
	_, body := plan.Generate(Plan(rep, name), name, time.Time{})
	head := fmt.Sprintf("-- Found by `fkrollout discover` (schemas %s): %d missing foreign key(s) at confidence >= %.2f.\n"+
		"-- Review each before the rollout: the evidence is above its statement.\n\n",
		strings.Join(rep.Schemas, ", "), len(rep.Candidates), rep.Threshold)
	return head + string(body)
}
