package discover

import (
	"strings"
	"unicode"
)

// Name match kinds, strongest first. They are the "why" of the name
// evidence in a report, so they are stable strings.
const (
	// MatchExact: the column has the parent key column's own name and that
	// name carries the parent table's (invoice.customer_id → customer.customer_id).
	MatchExact = "exact"
	// MatchTable: <table>_id → table.id, singular or plural, camelCase too.
	MatchTable = "table"
	// MatchSameName: same non-generic column name, table name unrelated.
	MatchSameName = "same_name"
	// MatchAffix: the table or the column adds tokens around the shared
	// head noun (scope_id → atp_scope_master, billing_customer_id → customer).
	MatchAffix = "affix"
	// MatchSelf: a self-reference by role (parent_id, manager_id, reports_to).
	MatchSelf = "self_reference"
	// MatchAbbreviation: cust_id → customer, mgr_id → manager, po_id → purchase_order.
	MatchAbbreviation = "abbreviation"
	// MatchPersonRole: a person's role (support_rep_id, owner_id, created_by)
	// pointing at the people table (employee, user, staff, person, member).
	MatchPersonRole = "person_role"
	// MatchNone: no name evidence; only the data can carry the candidate.
	MatchNone = "none"
)

// Name scores per kind: how much the name alone says "this is the link".
// Affix is scaled by how much of the names it covers (affixScore).
const (
	scoreExact        = 1.0
	scoreTable        = 0.95
	scoreSameName     = 0.8
	scoreSelf         = 0.8
	scoreAbbreviation = 0.7
	scorePersonRole   = 0.7
	// scoreBare discounts a column that names a table without a key suffix
	// ("customer" instead of "customer_id").
	scoreBare = 0.9
)

// NameMatch is the name evidence for one child column → parent column.
type NameMatch struct {
	Kind   string  `json:"kind"`
	Score  float64 `json:"score"`
	Detail string  `json:"detail,omitempty"`
}

// keySuffixes end a referencing column's name: customer_id, customerId,
// country_code, order_no.
var keySuffixes = map[string]bool{"id": true, "uuid": true, "guid": true, "key": true, "fk": true,
	"ref": true, "code": true, "no": true, "num": true, "pk": true}

// genericKey are names a key column has in every table; equal names say
// nothing (every table has an "id").
var genericKey = map[string]bool{"id": true, "uuid": true, "guid": true, "key": true, "code": true,
	"pk": true, "oid": true, "name": true, "no": true, "num": true}

// tableAffixes are tokens tables wear around their noun: tbl_customer,
// vendor_master, country_lookup.
var tableAffixes = map[string]bool{"tbl": true, "table": true, "tab": true, "t": true, "master": true,
	"mst": true, "lookup": true, "lkp": true, "lu": true, "ref": true, "dim": true, "fact": true,
	"data": true, "info": true, "list": true, "entity": true, "record": true, "def": true}

// selfRoles name a row's link to another row of its own table.
var selfRoles = map[string]bool{"parent": true, "manager": true, "reports": true, "supervisor": true,
	"boss": true, "superior": true, "lead": true, "head": true, "mentor": true, "predecessor": true,
	"successor": true, "previous": true, "prev": true, "next": true, "original": true, "root": true,
	"ancestor": true, "replaced": true, "replacement": true, "duplicate": true, "merged": true,
	"source": true, "copied": true, "cloned": true, "forked": true, "template": true, "reporting": true}

// personRoles are the roles a person plays on a row; personTables are the
// tables people live in. Both are general vocabulary, not any one schema's.
var personRoles = map[string]bool{"rep": true, "representative": true, "agent": true, "owner": true,
	"author": true, "creator": true, "created": true, "updated": true, "modified": true, "deleted": true,
	"assignee": true, "assigned": true, "approver": true, "approved": true, "reviewer": true,
	"reviewed": true, "manager": true, "supervisor": true, "salesperson": true, "seller": true,
	"handler": true, "operator": true, "requester": true, "requested": true, "submitter": true,
	"submitted": true, "reporter": true, "editor": true, "sponsor": true, "recruiter": true,
	"reports": true, "by": true}

var personTables = map[string]bool{"user": true, "employee": true, "staff": true, "person": true,
	"member": true, "personnel": true, "worker": true, "agent": true, "admin": true, "operator": true}

// tokens splits an identifier into lower-case words at _, -, spaces, dots
// and camelCase boundaries ("SupportRepId", "HTTPServer", "customer_ID").
func tokens(s string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(s)
	for i, r := range rs {
		if r == '_' || r == '-' || r == ' ' || r == '.' || r == '$' {
			flush()
			continue
		}
		if unicode.IsUpper(r) && len(cur) > 0 {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				flush()
			}
		}
		cur = append(cur, r)
	}
	flush()
	return out
}

// singular is a small English singulariser, enough for table names.
func singular(w string) string {
	irregular := map[string]string{"people": "person", "children": "child", "men": "man", "women": "woman",
		"data": "data", "media": "media", "criteria": "criterion", "indices": "index", "series": "series",
		"status": "status", "address": "address", "business": "business", "class": "class"}
	if s, ok := irregular[w]; ok {
		return s
	}
	switch {
	case len(w) > 4 && strings.HasSuffix(w, "ies"):
		return w[:len(w)-3] + "y"
	case strings.HasSuffix(w, "sses"), strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "ches"),
		strings.HasSuffix(w, "shes"), strings.HasSuffix(w, "uses"):
		return w[:len(w)-2]
	case len(w) > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") &&
		!strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		return w[:len(w)-1]
	}
	return w
}

func singularAll(ws []string) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = singular(w)
	}
	return out
}

// splitKeySuffix separates "customer_id" into stem [customer] and suffix
// "id"; also "id_customer", "fk_customer" and glued "customerid".
func splitKeySuffix(col []string) (stem []string, suffix string) {
	n := len(col)
	switch {
	case n >= 2 && keySuffixes[col[n-1]]:
		return col[:n-1], col[n-1]
	case n >= 2 && (col[0] == "id" || col[0] == "fk"):
		return col[1:], col[0]
	case n >= 1 && len(col[n-1]) > 4 && strings.HasSuffix(col[n-1], "id"):
		glued := append(append([]string(nil), col[:n-1]...), strings.TrimSuffix(col[n-1], "id"))
		return glued, "id"
	}
	return col, ""
}

// tableCore is the table's words, singular, without affixes such as
// tbl_ or _master (but never empty).
func tableCore(table string) []string {
	ws := singularAll(tokens(table))
	lo, hi := 0, len(ws)
	for hi-lo > 1 && tableAffixes[ws[lo]] {
		lo++
	}
	for hi-lo > 1 && tableAffixes[ws[hi-1]] {
		hi--
	}
	return ws[lo:hi]
}

func equalWords(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// matchName scores the name evidence that column childCol of childTable
// refers to parentCol of parentTable.
func matchName(childTable, childCol, parentTable, parentCol string) NameMatch {
	self := childTable == parentTable
	raw := tokens(childCol)
	col := singularAll(raw)
	key := singularAll(tokens(parentCol))
	core := tableCore(parentTable)
	stem, suffix := splitKeySuffix(col)
	best := NameMatch{Kind: MatchNone}
	try := func(m NameMatch) {
		if m.Score > best.Score {
			best = m
		}
	}
	keyGeneric := len(key) == 1 && genericKey[key[0]]
	if !self && equalWords(col, key) && !keyGeneric {
		if kstem, _ := splitKeySuffix(key); equalWords(kstem, core) {
			try(NameMatch{MatchExact, scoreExact, childCol + " is " + parentTable + "'s key column " + parentCol})
		} else {
			try(NameMatch{MatchSameName, scoreSameName, "same column name as " + parentTable + "." + parentCol})
		}
	}
	// Within one table only a role word makes a link: a column naming its
	// own table (employee.employee_code) is another key, not a reference.
	if self {
		try(selfMatch(raw))
	} else if suffix == "" || suffixFits(suffix, key, core) {
		try(tableMatch(stem, suffix, core, parentTable))
	}
	// product_sku → product.sku: the table, then a key column that is no
	// usual suffix.
	if !self && equalWords(col, append(append([]string(nil), core...), key...)) {
		try(NameMatch{MatchTable, scoreTable, "column is table " + parentTable + " + key column " + parentCol})
	}
	try(personMatch(raw, suffix, core, parentTable))
	return best
}

// suffixFits: the column's key suffix agrees with the parent key column
// (customer_id → id or customer_id; country_code → code).
func suffixFits(suffix string, key, core []string) bool {
	if suffix == "" {
		return false
	}
	kstem, ksuffix := splitKeySuffix(key)
	if len(key) == 1 {
		ksuffix, kstem = key[0], nil
	}
	if len(kstem) > 0 && !equalWords(kstem, core) {
		return false
	}
	idLike := map[string]bool{"id": true, "uuid": true, "guid": true, "key": true, "fk": true, "ref": true, "pk": true}
	return suffix == ksuffix || (idLike[suffix] && idLike[ksuffix])
}

// tableMatch compares the column's stem with the table's core words: equal
// is a table match; sharing the head noun (last word) is an affix match
// scored by coverage; an abbreviated head noun is an abbreviation match.
func tableMatch(stem []string, suffix string, core []string, parentTable string) NameMatch {
	if len(stem) == 0 {
		return NameMatch{Kind: MatchNone}
	}
	bare := 1.0
	if suffix == "" {
		bare = scoreBare
	}
	if equalWords(stem, core) {
		return NameMatch{MatchTable, scoreTable * bare, "column names table " + parentTable}
	}
	m := commonTail(stem, core)
	if m > 0 {
		cov := float64(m) / float64(max(len(stem), len(core)))
		return NameMatch{MatchAffix, (0.6 + 0.3*cov) * bare, "shares \"" + strings.Join(core[len(core)-m:], "_") + "\" with table " + parentTable}
	}
	if abbreviates(stem[len(stem)-1], core) {
		s := scoreAbbreviation * bare
		if len(stem) > 1 {
			s *= 0.9
		}
		return NameMatch{MatchAbbreviation, s, "\"" + stem[len(stem)-1] + "\" abbreviates table " + parentTable}
	}
	return NameMatch{Kind: MatchNone}
}

// commonTail counts the words stem and core share at their ends.
func commonTail(a, b []string) int {
	n := 0
	for n < len(a) && n < len(b) && a[len(a)-1-n] == b[len(b)-1-n] {
		n++
	}
	return n
}

// abbreviates: w is a prefix of the table's head noun (cust → customer),
// its consonant skeleton (mgr → manager, dept → department), or the
// initials of its words (po → purchase_order).
func abbreviates(w string, core []string) bool {
	head := core[len(core)-1]
	if len(w) >= 3 && len(w) < len(head) && strings.HasPrefix(head, w) {
		return true
	}
	if len(w) >= 3 && len(w) <= len(head)/2+1 && w[0] == head[0] && subsequence(w, head) {
		return true
	}
	if len(core) >= 2 && len(w) == len(core) {
		for i, c := range core {
			if c == "" || w[i] != c[0] {
				return false
			}
		}
		return true
	}
	return false
}

func subsequence(w, s string) bool {
	i := 0
	for j := 0; j < len(s) && i < len(w); j++ {
		if s[j] == w[i] {
			i++
		}
	}
	return i == len(w)
}

// selfMatch: a role word that names another row of the same table.
func selfMatch(col []string) NameMatch {
	for _, w := range col {
		if selfRoles[w] {
			return NameMatch{MatchSelf, scoreSelf, "\"" + w + "\" names another row of the same table"}
		}
	}
	return NameMatch{Kind: MatchNone}
}

// personMatch: a person's role on the row and a table of people.
func personMatch(col []string, suffix string, core []string, parentTable string) NameMatch {
	if !personTables[core[len(core)-1]] {
		return NameMatch{Kind: MatchNone}
	}
	if suffix == "" && col[len(col)-1] != "by" && col[len(col)-1] != "to" {
		return NameMatch{Kind: MatchNone}
	}
	for _, w := range col {
		if personRoles[w] {
			return NameMatch{MatchPersonRole, scorePersonRole, "\"" + w + "\" is a person's role; " + parentTable + " holds people"}
		}
	}
	return NameMatch{Kind: MatchNone}
}

// genericColumn: a column named like every table's own key ("id",
// "code") says nothing about what it references.
func genericColumn(col string) bool {
	t := tokens(col)
	return len(t) == 1 && genericKey[t[0]]
}
