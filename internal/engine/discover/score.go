package discover

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Competitor is another parent whose key also holds the child's values:
// with integer ids 1..N every table overlaps every other.
type Competitor struct {
	Parent    string  `json:"parent"` // schema.table(columns)
	NameScore float64 `json:"name_score"`
	Inclusion float64 `json:"inclusion"`
	// Estimated: a dense integer key whose range holds the sampled values;
	// the overlap is the range's density, no lookup was made.
	Estimated bool `json:"estimated,omitempty"`
}

// Scoring constants, documented in docs/DISCOVER.md.
const (
	// competitorSlack: a parent within this much inclusion of the
	// candidate's competes with it.
	competitorSlack = 0.02
	// competitorFloor: below this inclusion a parent does not compete.
	competitorFloor = 0.9
	// noDataCap: a name with nothing to check it against stays below any
	// sensible threshold.
	noDataCap = 0.6
	// dataWeight caps what data alone can say (no name at all).
	dataWeight = 0.9
	// Multipliers when another parent fits as well: better named, equally
	// named, or (for a candidate without a name) fits at all.
	outnamedFactor  = 0.5
	ambiguousFactor = 0.7
	dataTieFactor   = 0.3
)

// dataEvidence is what the values say about one child set → key.
type dataEvidence struct {
	Distinct int64 // distinct non-null child values examined
	Included int64 // of those, present in the parent key
	// Chance that one child value is in the parent key by coincidence.
	Chance float64
	// RowRatio is the share of non-null child rows that have a parent,
	// when counted (0: unknown). With few distinct values one orphan value
	// weighs heavily; the rows say how much data it really is.
	RowRatio float64
}

// inclusionFit maps the inclusion ratio to [0, 1]: 1 at 100 %, 0.85 at
// 95 %, 0.46 at 80 %, 0 at or below 50 %. A missing foreign key usually has
// some orphans (that is why it needs a rollout), so 95 % still counts.
func inclusionFit(ratio float64) float64 {
	x := (ratio - 0.5) / 0.5
	if x <= 0 {
		return 0
	}
	return math.Pow(min(x, 1), 1.5)
}

// dataStrength is how unlikely the inclusion is by chance: k included
// distinct values, each in the key by chance with probability c, and a
// discount for very few values (one value proves little).
func dataStrength(d dataEvidence) float64 {
	k := float64(d.Included)
	if k <= 0 {
		return 0
	}
	return (1 - math.Pow(d.Chance, k)) * (1 - math.Pow(0.5, k))
}

// confidence combines name and data evidence into [0, 1] and says why.
// Name and data-only strength are independent evidence (1-(1-N)(1-0.9D)),
// scaled by the inclusion fit (of values or of rows, whichever is higher),
// then lowered when other parents fit as well.
func confidence(name NameMatch, d dataEvidence, comps []Competitor) (float64, []string) {
	var why []string
	if name.Kind != MatchNone {
		why = append(why, fmt.Sprintf("name %s (%.2f): %s", name.Kind, name.Score, name.Detail))
	}
	if d.Distinct == 0 {
		why = append(why, "no non-null values to check: name evidence only")
		return round3(name.Score * noDataCap), why
	}
	ratio := float64(d.Included) / float64(d.Distinct)
	ds := dataStrength(d)
	conf := (1 - (1-name.Score)*(1-dataWeight*ds)) * inclusionFit(max(ratio, d.RowRatio))
	why = append(why, fmt.Sprintf("%.1f%% of %d distinct values found in the parent", 100*ratio, d.Distinct))
	if d.RowRatio > ratio {
		why = append(why, fmt.Sprintf("%.1f%% of the rows have a parent", 100*d.RowRatio))
	}
	if ds >= 0.5 {
		why = append(why, fmt.Sprintf("values unlikely to match by chance (data strength %.2f)", ds))
	}
	factor, note := competition(name, ratio, comps)
	if note != "" {
		why = append(why, note)
	}
	return round3(conf * factor), why
}

// competition: with a name, only a better- or equally-named parent that
// fits the values as well lowers the confidence; without a name, any parent
// that fits does (ids 1..N overlap everywhere).
func competition(name NameMatch, ratio float64, comps []Competitor) (float64, string) {
	var better, equal, any []string
	for _, c := range comps {
		if c.Inclusion < competitorFloor || c.Inclusion < ratio-competitorSlack {
			continue
		}
		any = append(any, c.Parent)
		switch {
		case name.Score > 0 && c.NameScore > name.Score:
			better = append(better, c.Parent)
		case name.Score > 0 && c.NameScore == name.Score:
			equal = append(equal, c.Parent)
		}
	}
	switch {
	case len(better) > 0:
		return outnamedFactor, "a better-named parent fits as well: " + listSome(better)
	case len(equal) > 0:
		return ambiguousFactor, "an equally-named parent fits as well: " + listSome(equal)
	case name.Score == 0 && len(any) > 0:
		return dataTieFactor, "no name evidence and the values also fit " + listSome(any)
	case len(any) > 0:
		return 1, "values also fit (no name evidence there): " + listSome(any)
	}
	return 1, ""
}

func listSome(xs []string) string {
	sort.Strings(xs)
	if len(xs) > 4 {
		return strings.Join(xs[:4], ", ") + fmt.Sprintf(" and %d more", len(xs)-4)
	}
	return strings.Join(xs, ", ")
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
