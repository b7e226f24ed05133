package discover

import (
	"strings"
)

// colset is one set of child columns that may reference a key, with the
// sample of its distinct non-null values (as text, one slice per row).
type colset struct {
	id     string
	t      *table
	cols   []*column
	values [][]string
	// sampled: the values came from TABLESAMPLE (a big table);
	// unsampled: not read at all (not worth it, or the read failed).
	sampled   bool
	unsampled bool
	// exact figures, filled for the sets of surviving pairs.
	exact                 bool
	rows, nulls, distinct int64
}

// pair is one child column set → parent key candidate.
type pair struct {
	child  *colset
	parent *key
	name   NameMatch
	// chance is the probability that one random child value is in the
	// parent's key set by coincidence (dense integer ids: near 1).
	chance float64
	// Screening on the sample.
	probed    bool
	estimated bool // dense integer range overlap, not probed
	included  int  // sampled distinct values found in the parent
	estRatio  float64
	// Exact figures for survivors.
	exact                      bool
	orphanRows, orphanDistinct int64
	parentRows                 int64
	exactErr                   string
	conf                       float64
	why                        []string
	competitors                []Competitor
}

// sampleRatio is the inclusion ratio on the sample (or the estimate).
func (p *pair) sampleRatio() float64 {
	if p.estimated {
		return p.estRatio
	}
	if !p.probed || len(p.child.values) == 0 {
		return 0
	}
	return float64(p.included) / float64(len(p.child.values))
}

// inclusion is the best-known inclusion ratio and the number of distinct
// child values it is based on.
func (p *pair) inclusion() (ratio float64, included, distinct int64) {
	if p.exact && p.child.exact {
		d := p.child.distinct
		if d == 0 {
			return 0, 0, 0
		}
		in := d - p.orphanDistinct
		return float64(in) / float64(d), in, d
	}
	d := int64(len(p.child.values))
	if d == 0 {
		return 0, 0, 0
	}
	return p.sampleRatio(), int64(p.included), d
}

// rowRatio is the share of non-null child rows with a parent (exact
// figures only; 0 when unknown).
func (p *pair) rowRatio() float64 {
	if !p.exact || !p.child.exact {
		return 0
	}
	rows := p.child.rows - p.child.nulls
	if rows <= 0 {
		return 0
	}
	return float64(rows-p.orphanRows) / float64(rows)
}

// integerType: int2, int4, int8 compare with each other.
func integerType(oid uint32) bool { return oid == oidInt2 || oid == oidInt4 || oid == oidInt8 }

func stringType(oid uint32) bool { return oid == oidText || oid == oidVarchar }

// compatible: PostgreSQL accepts the foreign key (an equality operator of
// the parent key's operator family) and the type is one keys are made of.
func compatible(child, parent *column) bool {
	switch {
	case integerType(child.BaseType) && integerType(parent.BaseType):
		return true
	case stringType(child.BaseType) && stringType(parent.BaseType):
		return true
	case child.BaseType != parent.BaseType:
		return false
	}
	switch child.Category {
	case "N", "S", "E", "D":
		// float4/float8 and money are numbers nobody keys on.
		return child.BaseType != 700 && child.BaseType != 701 && child.BaseType != 790
	}
	return child.BaseType == oidUUID
}

// generate lists every type-compatible child column set for every key,
// with its name evidence. Columns that already carry a foreign key, the
// key's own columns and generic names ("id") are left out; within one
// table only a role word (parent_id) makes a candidate.
func generate(cat *catalogData) ([]*colset, []*pair) {
	sets := map[string]*colset{}
	var order []*colset
	set := func(t *table, cols []*column) *colset {
		id := colsetID(t.OID, colNums(cols))
		if s, ok := sets[id]; ok {
			return s
		}
		s := &colset{id: id, t: t, cols: cols}
		sets[id] = s
		order = append(order, s)
		return s
	}
	var pairs []*pair
	for _, k := range cat.keys {
		for _, t := range cat.tables {
			var found [][]*column
			var names []NameMatch
			if len(k.Cols) == 1 {
				found, names = singleCandidates(cat, t, k)
			} else if cols, nm, ok := compositeCandidate(cat, t, k); ok {
				found, names = [][]*column{cols}, []NameMatch{nm}
			}
			for i, cols := range found {
				pairs = append(pairs, &pair{child: set(t, cols), parent: k, name: names[i]})
			}
		}
	}
	return order, pairs
}

func singleCandidates(cat *catalogData, t *table, k *key) ([][]*column, []NameMatch) {
	pc := k.Cols[0]
	var out [][]*column
	var names []NameMatch
	for _, c := range t.Columns {
		if (t == k.Table && c == pc) || !compatible(c, pc) || genericColumn(c.Name) || cat.hasFK(t, []*column{c}) {
			continue
		}
		nm := matchName(t.Name, c.Name, k.Table.Name, pc.Name)
		if t == k.Table && nm.Score == 0 {
			continue
		}
		out = append(out, []*column{c})
		names = append(names, nm)
	}
	return out, names
}

// compositeCandidate finds, in t, one column per key column, each either
// of the same name or name-matching the key's table (tenant_id, order_id
// → orders(tenant_id, id)). Composite candidates need names: searching
// every combination of columns by data alone would not end.
func compositeCandidate(cat *catalogData, t *table, k *key) ([]*column, NameMatch, bool) {
	if t == k.Table {
		return nil, NameMatch{}, false
	}
	used := map[*column]bool{}
	var cols []*column
	score, namesParent := 1.0, false
	for _, pc := range k.Cols {
		c, s, names := bestCompositeColumn(t, k, pc, used)
		if c == nil {
			return nil, NameMatch{}, false
		}
		used[c] = true
		cols = append(cols, c)
		score = min(score, s)
		namesParent = namesParent || names
	}
	if cat.hasFK(t, cols) {
		return nil, NameMatch{}, false
	}
	kind, detail := MatchTable, "columns name table "+k.Table.Name
	if !namesParent {
		score = min(score, scoreSameName)
		kind, detail = MatchSameName, "same column names as key "+k.Name
	}
	return cols, NameMatch{Kind: kind, Score: score, Detail: detail + " (" + strings.Join(colNames(cols), ", ") + ")"}, true
}

func bestCompositeColumn(t *table, k *key, pc *column, used map[*column]bool) (*column, float64, bool) {
	var best *column
	bestScore, bestNames := 0.0, false
	for _, c := range t.Columns {
		if used[c] || !compatible(c, pc) {
			continue
		}
		s, names := 0.0, false
		if equalWords(tokens(c.Name), tokens(pc.Name)) {
			s = 1.0
		}
		if nm := matchName(t.Name, c.Name, k.Table.Name, pc.Name); nm.Score >= scoreAbbreviation && nm.Kind != MatchSameName && nm.Kind != MatchPersonRole {
			s, names = max(s, nm.Score), true
		}
		if s > bestScore {
			best, bestScore, bestNames = c, s, names
		}
	}
	return best, bestScore, bestNames
}
