package behave

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// A row synthesized into a partitioned table must land in one of its leaf
// partitions, or the insert fails with "no partition of relation found for
// row". Values for the partition key columns are therefore derived from the
// leaf partitions' bounds, read from the catalog (no existing row is read).

// keyChoice is how a route sets one partition key column: an exact value
// (nil = NULL) or, for an integer RANGE key, a random value in [lo, hi], so
// a test key rarely meets an existing one in a partition of serial ids.
type keyChoice struct {
	val    *string
	span   bool
	lo, hi int64
}

func exact(v *string) keyChoice { return keyChoice{val: v} }

// pick returns the value to insert.
func (k keyChoice) pick() *string {
	if !k.span {
		return k.val
	}
	width := uint64(k.hi) - uint64(k.lo) // two's complement: right for hi >= lo
	if width == math.MaxUint64 {
		return strPtr(strconv.FormatInt(int64(rand.Uint64()), 10))
	}
	return strPtr(strconv.FormatInt(int64(uint64(k.lo)+rand.Uint64N(width+1)), 10))
}

// admits reports whether v (canonical text, as the server prints it) is a
// value this choice could have picked.
func (k keyChoice) admits(v *string) bool {
	if !k.span {
		return (v == nil) == (k.val == nil) && (v == nil || *v == *k.val)
	}
	if v == nil {
		return false
	}
	n, err := strconv.ParseInt(*v, 10, 64)
	return err == nil && n >= k.lo && n <= k.hi
}

// Route ranks: how sure a route is to reach its leaf. Concrete bounds are
// certain; a hash partition takes any value when every remainder has a
// partition; MINVALUE or expression keys leave columns to chance; DEFAULT
// takes whatever no sibling takes.
const (
	rankExact = iota
	rankHash
	rankPartial
	rankDefault
)

// route is one way into a leaf partition: choices for the key columns its
// bounds constrain (all levels), the other columns are free.
type route struct {
	keys map[string]keyChoice
	rank int
}

func (r route) with(rank int) route {
	keys := make(map[string]keyChoice, len(r.keys))
	for c, k := range r.keys {
		keys[c] = k
	}
	return route{keys: keys, rank: max(r.rank, rank)}
}

// admits reports whether the route agrees with values already fixed.
func (r route) admits(fixed values) bool {
	for c, k := range r.keys {
		if v, ok := fixed[c]; ok && !k.admits(v) {
			return false
		}
	}
	return true
}

// maxRoutes bounds the routes kept per table (tables with thousands of
// partitions need a few good ones, not all).
const maxRoutes = 64

// maxListValues bounds the routes one LIST partition contributes.
const maxListValues = 4

// routeValues picks partition key values for a row of t that the fixed
// values leave open: from the attempt-th route that agrees with them (any
// route when none does, the insert then says why). Nil when t is not
// partitioned.
func (t *tableInfo) routeValues(fixed values, attempt int) values {
	if len(t.Routes) == 0 {
		return nil
	}
	ok := slices.DeleteFunc(slices.Clone(t.Routes), func(r route) bool { return !r.admits(fixed) })
	if len(ok) == 0 {
		ok = t.Routes
	}
	out := values{}
	for c, k := range ok[attempt%len(ok)].keys {
		if _, set := fixed[c]; !set {
			out[c] = k.pick()
		}
	}
	return out
}

// choicesFor lists the distinct bound-derived choices routes make for col.
func (t *tableInfo) choicesFor(col string) []keyChoice {
	var out []keyChoice
	for _, r := range t.Routes {
		if k, ok := r.keys[col]; ok && !slices.ContainsFunc(out, func(o keyChoice) bool { return o.String() == k.String() }) {
			out = append(out, k)
		}
	}
	return out
}

// leavesFree reports whether some row of t may take any value in col: t is
// not partitioned by it, or a route (DEFAULT, hash) does not constrain it.
func (t *tableInfo) leavesFree(col string) bool {
	if !t.PartCols[col] {
		return true
	}
	return slices.ContainsFunc(t.Routes, func(r route) bool { _, ok := r.keys[col]; return !ok })
}

// partition is one direct partition of a partitioned table.
type partition struct {
	oid     uint32
	relkind string
	bound   string // pg_get_expr(relpartbound): "FOR VALUES ..." or "DEFAULT"
}

const partitionKeySQL = `
SELECT array(SELECT coalesce(a.attname::text, '') FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY u(n, o)
             LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = u.n ORDER BY u.o)
FROM pg_partitioned_table pt WHERE pt.partrelid = $1`

const partitionsSQL = `
SELECT c.oid, c.relkind::text, coalesce(pg_get_expr(c.relpartbound, c.oid), '')
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1
ORDER BY c.relname`

// loadRoutes fills t.Routes and t.PartCols for the partitioned table oid,
// best routes first.
func loadRoutes(ctx context.Context, tx pgx.Tx, t *tableInfo, oid uint32) error {
	t.PartCols = map[string]bool{}
	routes, err := collectRoutes(ctx, tx, t, oid, route{keys: map[string]keyChoice{}}, 0)
	if err != nil {
		return fmt.Errorf("read partitions of %s: %w", t.Name, err)
	}
	slices.SortStableFunc(routes, func(a, b route) int { return a.rank - b.rank })
	// Hash partitions and sub-partitions yield the same route many times.
	seen := map[string]bool{}
	for _, r := range routes {
		if k := r.String(); !seen[k] && len(t.Routes) < maxRoutes {
			seen[k] = true
			t.Routes = append(t.Routes, r)
		}
	}
	return nil
}

// String identifies a route by its choices, for de-duplication and messages.
func (r route) String() string {
	cols := make([]string, 0, len(r.keys))
	for c := range r.keys {
		cols = append(cols, c)
	}
	slices.Sort(cols)
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = strconv.Quote(c) + "=" + r.keys[c].String()
	}
	return strings.Join(parts, ",")
}

func (k keyChoice) String() string {
	switch {
	case k.span:
		return fmt.Sprintf("[%d..%d]", k.lo, k.hi)
	case k.val == nil:
		return "NULL"
	}
	return strconv.Quote(*k.val)
}

// collectRoutes returns the routes into every leaf below oid, each
// extending base with the constraints of the levels it passes.
func collectRoutes(ctx context.Context, tx pgx.Tx, t *tableInfo, oid uint32, base route, depth int) ([]route, error) {
	if depth > 32 {
		return nil, fmt.Errorf("partition tree deeper than 32 levels")
	}
	var keys []string
	if err := tx.QueryRow(ctx, partitionKeySQL, oid).Scan(&keys); err != nil {
		return nil, fmt.Errorf("partition key: %w", err)
	}
	for _, k := range keys {
		if k != "" {
			t.PartCols[k] = true
		}
	}
	rows, err := tx.Query(ctx, partitionsSQL, oid)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	kids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partition, error) {
		var p partition
		return p, r.Scan(&p.oid, &p.relkind, &p.bound)
	})
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	var out []route
	for _, kid := range kids {
		// A foreign-table partition would send the test row outside the
		// transaction's control: never route there on purpose.
		if kid.relkind == "f" {
			continue
		}
		for _, r := range t.boundRoutes(base, keys, parseBound(kid.bound)) {
			if kid.relkind != "p" {
				out = append(out, r)
				continue
			}
			sub, err := collectRoutes(ctx, tx, t, kid.oid, r, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		}
	}
	return out, nil
}

// boundRoutes extends base with what one partition's bound says about the
// key columns (keys; "" for an expression): RANGE takes the FROM bound
// (random within the bounds for a one-column integer key), LIST one route
// per listed value (non-NULL first), HASH and DEFAULT nothing.
func (t *tableInfo) boundRoutes(base route, keys []string, b bound) []route {
	switch b.kind {
	case boundDefault:
		return []route{base.with(rankDefault)}
	case boundHash:
		return []route{base.with(rankHash)}
	case boundList:
		return t.listRoutes(base, keys, b.list)
	case boundRange:
		return []route{t.rangeRoute(base, keys, b)}
	}
	return []route{base.with(rankDefault)} // unparsed bound: leave it to chance
}

func (t *tableInfo) listRoutes(base route, keys []string, list []*string) []route {
	if len(keys) != 1 || keys[0] == "" {
		return []route{base.with(rankPartial)}
	}
	vals := slices.Clone(list)
	slices.SortStableFunc(vals, func(a, b *string) int { return boolInt(a == nil) - boolInt(b == nil) })
	var out []route
	for _, v := range vals[:min(len(vals), maxListValues)] {
		r := base.with(rankExact)
		r.keys[keys[0]] = exact(v)
		out = append(out, r)
	}
	return out
}

func (t *tableInfo) rangeRoute(base route, keys []string, b bound) route {
	if len(keys) == 1 && keys[0] != "" && len(b.from) == 1 && len(b.to) == 1 {
		if c, ok := t.col(keys[0]); ok {
			if k, ok := intSpan(c.BaseType, b.from[0], b.to[0]); ok {
				r := base.with(rankExact)
				r.keys[keys[0]] = k
				return r
			}
		}
	}
	// The FROM bound is inclusive, so it lies inside the partition; from a
	// MINVALUE on the bound no longer pins the columns.
	r := base.with(rankExact)
	for i, k := range keys {
		if i >= len(b.from) || b.from[i].min || b.from[i].max {
			r.rank = max(r.rank, rankPartial)
			break
		}
		if k == "" { // an expression: no column to set
			r.rank = max(r.rank, rankPartial)
			continue
		}
		r.keys[k] = exact(b.from[i].val)
	}
	return r
}

// intSpan turns a one-column integer RANGE bound into [from, to-1], with
// MINVALUE/MAXVALUE as the type's limits.
func intSpan(baseType string, from, to rangeDatum) (keyChoice, bool) {
	lo, hi, ok := intLimits(baseType)
	if !ok {
		return keyChoice{}, false
	}
	if !from.min {
		n, err := datumInt(from)
		if err != nil {
			return keyChoice{}, false
		}
		lo = n
	}
	if !to.max {
		n, err := datumInt(to)
		if err != nil || n == math.MinInt64 {
			return keyChoice{}, false
		}
		hi = n - 1 // TO is exclusive
	}
	if hi < lo {
		return keyChoice{}, false
	}
	return keyChoice{span: true, lo: lo, hi: hi}, true
}

func intLimits(baseType string) (lo, hi int64, ok bool) {
	switch baseType {
	case "int2":
		return math.MinInt16, math.MaxInt16, true
	case "int4":
		return math.MinInt32, math.MaxInt32, true
	case "int8":
		return math.MinInt64, math.MaxInt64, true
	}
	return 0, 0, false
}

func datumInt(d rangeDatum) (int64, error) {
	if d.min || d.max || d.val == nil {
		return 0, fmt.Errorf("not a value")
	}
	return strconv.ParseInt(*d.val, 10, 64)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// bound is a parsed partition bound.
type bound struct {
	kind     boundKind
	list     []*string    // LIST values; nil = NULL
	from, to []rangeDatum // RANGE
}

type boundKind int

const (
	boundUnknown boundKind = iota
	boundDefault
	boundList
	boundRange
	boundHash
)

// rangeDatum is one RANGE bound value: a literal or MINVALUE/MAXVALUE.
type rangeDatum struct {
	val      *string
	min, max bool
}

// parseBound reads what pg_get_expr prints for relpartbound:
//
//	DEFAULT
//	FOR VALUES IN ('a', 'it''s', NULL)
//	FOR VALUES FROM ('2024-01-01', MINVALUE) TO (10, MAXVALUE)
//	FOR VALUES WITH (modulus 4, remainder 0)
//
// Literals come without casts: quoted, or bare numbers and booleans.
// Anything else is boundUnknown (the row is left to chance).
func parseBound(s string) bound {
	toks, ok := tokenize(s)
	if !ok {
		return bound{}
	}
	p := &boundParser{toks: toks}
	switch {
	case p.word("DEFAULT") && p.done():
		return bound{kind: boundDefault}
	case !p.word("FOR") || !p.word("VALUES"):
		return bound{}
	case p.word("WITH"):
		return bound{kind: boundHash}
	case p.word("IN"):
		if d, ok := p.datums(); ok && p.done() {
			b := bound{kind: boundList}
			for _, x := range d {
				if x.min || x.max {
					return bound{}
				}
				b.list = append(b.list, x.val)
			}
			return b
		}
	case p.word("FROM"):
		from, ok1 := p.datums()
		ok2 := p.word("TO")
		to, ok3 := p.datums()
		if ok1 && ok2 && ok3 && p.done() {
			return bound{kind: boundRange, from: from, to: to}
		}
	}
	return bound{}
}

// token is a quoted literal (quoted, text unescaped) or a bare word or
// punctuation.
type token struct {
	text   string
	quoted bool
}

func tokenize(s string) ([]token, bool) {
	var toks []token
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')' || c == ',':
			toks = append(toks, token{text: string(c)})
			i++
		case c == '\'':
			var b strings.Builder
			for i++; ; i++ {
				if i >= len(s) {
					return nil, false
				}
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i++
						continue
					}
					i++
					break
				}
				b.WriteByte(s[i])
			}
			toks = append(toks, token{text: b.String(), quoted: true})
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n(),'", rune(s[j])) {
				j++
			}
			toks = append(toks, token{text: s[i:j]})
			i = j
		}
	}
	return toks, true
}

type boundParser struct {
	toks []token
	i    int
}

func (p *boundParser) done() bool { return p.i == len(p.toks) }

// word consumes the bare word w (case-insensitively) or punctuation.
func (p *boundParser) word(w string) bool {
	if p.i < len(p.toks) && !p.toks[p.i].quoted && strings.EqualFold(p.toks[p.i].text, w) {
		p.i++
		return true
	}
	return false
}

// datums reads "(d, d, ...)".
func (p *boundParser) datums() ([]rangeDatum, bool) {
	if !p.word("(") {
		return nil, false
	}
	var out []rangeDatum
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		p.i++
		var d rangeDatum
		switch {
		case t.quoted:
			d.val = strPtr(t.text)
		case strings.EqualFold(t.text, "NULL"):
		case strings.EqualFold(t.text, "MINVALUE"):
			d.min = true
		case strings.EqualFold(t.text, "MAXVALUE"):
			d.max = true
		case t.text == "(" || t.text == ")" || t.text == ",":
			return nil, false
		default:
			d.val = strPtr(t.text)
		}
		out = append(out, d)
		if p.word(")") {
			return out, true
		}
		if !p.word(",") {
			return nil, false
		}
	}
	return nil, false
}
