package discover

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// tableSize is a table's row count: exact for small tables (counted up to
// SampleRowsAbove+1 rows), the planner's estimate for big ones.
type tableSize struct {
	rows  int64
	exact bool
	big   bool
	ok    bool
	// lowerBound: a big table whose statistics are missing or stale; rows
	// is only "more than SampleRowsAbove", too little to judge a key's
	// density by.
	lowerBound bool
}

// keyProfile is what the screening knows of a single-column parent key:
// the range of an integer key, the value shapes of any other.
type keyProfile struct {
	ok       bool
	integer  bool
	min, max int64
	shapes   map[string]bool
}

// probeChunk bounds the parents looked up in one query.
const probeChunk = 16

// sizeTables sizes every table a pair touches; a table that cannot be
// read (lock, timeout) is dropped with a warning.
func (r *runner) sizeTables(ctx context.Context, pairs []*pair) error {
	var tables []*table
	seen := map[*table]bool{}
	for _, p := range pairs {
		for _, t := range []*table{p.child.t, p.parent.Table} {
			if !seen[t] {
				seen[t] = true
				tables = append(tables, t)
			}
		}
	}
	return r.each(ctx, "size", len(tables), func(ctx context.Context, i int) error {
		s, err := r.sizeTable(ctx, tables[i])
		if err != nil {
			return r.warn(ctx, "size "+tables[i].display(), err)
		}
		r.mu.Lock()
		r.sizes[tables[i]] = s
		r.mu.Unlock()
		return nil
	})
}

func (r *runner) sizeTable(ctx context.Context, t *table) (tableSize, error) {
	limit := r.opts.SampleRowsAbove
	if t.EstRows > limit {
		return tableSize{rows: t.EstRows, big: true, ok: true}, nil
	}
	// A bounded count: exact for small tables, and never a full scan of a
	// big table whose statistics are missing.
	var n int64
	err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
		return q.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %d) s", t.ident(), limit+1)).Scan(&n)
	})
	if err != nil {
		return tableSize{}, err
	}
	if n > limit {
		return tableSize{rows: n, big: true, ok: true, lowerBound: true}, nil
	}
	return tableSize{rows: n, exact: true, ok: true}, nil
}

func (r *runner) size(t *table) tableSize {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sizes[t]
}

// worthSampling drops the child sets whose every pair is unnamed and points
// at a dense integer key: their values could only fit by chance there.
func (r *runner) worthSampling(sets []*colset, pairs []*pair) []*colset {
	need := map[*colset]bool{}
	for _, p := range pairs {
		if need[p.child] {
			continue
		}
		prof := r.profileOf(p.parent)
		need[p.child] = p.name.Score > 0 || !prof.integer || r.chance(p, prof) < 0.5
	}
	var out []*colset
	for _, s := range sets {
		if need[s] {
			out = append(out, s)
		} else {
			s.unsampled = true
		}
	}
	return out
}

// sampleSets reads up to SampleSize distinct non-null values of every
// child set whose table could be sized.
func (r *runner) sampleSets(ctx context.Context, sets []*colset) error {
	return r.each(ctx, "sample", len(sets), func(ctx context.Context, i int) error {
		s := sets[i]
		size := r.size(s.t)
		if !size.ok {
			s.unsampled = true
			return nil
		}
		vals, err := r.sample(ctx, s.t, s.cols, size)
		if err != nil {
			s.unsampled = true
			return r.warn(ctx, "sample "+s.t.display()+"("+strings.Join(colNames(s.cols), ", ")+")", err)
		}
		s.values, s.sampled = vals, size.big
		return nil
	})
}

// sample returns distinct non-null value tuples as text. Big tables are
// read through TABLESAMPLE SYSTEM (pages at random, about 20 rows per
// wanted value), with a bounded plain read when that finds too few (sparse
// columns); small tables in full, in a stable pseudo-random order.
func (r *runner) sample(ctx context.Context, t *table, cols []*column, size tableSize) ([][]string, error) {
	n := r.opts.SampleSize
	var out [][]string
	err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
		var err error
		if !size.big {
			out, err = collectTuples(ctx, q, smallSampleSQL(t, cols, n), len(cols))
			return err
		}
		out, err = collectTuples(ctx, q, tableSampleSQL(t, cols, n, size.rows), len(cols))
		if err != nil || len(out) >= min(n, 10) {
			return err
		}
		out, err = collectTuples(ctx, q, boundedSampleSQL(t, cols, n), len(cols))
		return err
	})
	return out, err
}

func quotedCols(prefix string, cols []*column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = prefix + pgx.Identifier{c.Name}.Sanitize()
	}
	return out
}

func notNull(prefix string, cols []*column) string {
	q := quotedCols(prefix, cols)
	for i := range q {
		q[i] += " IS NOT NULL"
	}
	return strings.Join(q, " AND ")
}

func asText(cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c + "::text"
	}
	return strings.Join(out, ", ")
}

func smallSampleSQL(t *table, cols []*column, n int) string {
	q := strings.Join(quotedCols("", cols), ", ")
	return fmt.Sprintf("SELECT %s FROM (SELECT DISTINCT %s FROM %s WHERE %s) s ORDER BY md5(row(%s)::text) LIMIT %d",
		asText(quotedCols("", cols)), q, t.ident(), notNull("", cols), q, n)
}

func tableSampleSQL(t *table, cols []*column, n int, rows int64) string {
	pct := 100 * float64(20*n) / float64(max(rows, 1))
	pct = min(max(pct, 0.0001), 100)
	return fmt.Sprintf("SELECT DISTINCT %s FROM %s TABLESAMPLE SYSTEM (%s) REPEATABLE (42) WHERE %s LIMIT %d",
		asText(quotedCols("", cols)), t.ident(), strconv.FormatFloat(pct, 'f', 6, 64), notNull("", cols), n)
}

func boundedSampleSQL(t *table, cols []*column, n int) string {
	q := strings.Join(quotedCols("", cols), ", ")
	return fmt.Sprintf("SELECT DISTINCT %s FROM (SELECT %s FROM %s WHERE %s LIMIT %d) s LIMIT %d",
		asText(quotedCols("", cols)), q, t.ident(), notNull("", cols), 20*n, n)
}

func collectTuples(ctx context.Context, q querier, sql string, width int) ([][]string, error) {
	rows, err := q.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		tuple := make([]string, width)
		ptrs := make([]any, width)
		for i := range tuple {
			ptrs[i] = &tuple[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, tuple)
	}
	return out, rows.Err()
}

// profileKeys reads the range of every single-column integer parent key
// (from its index) and the value shapes of the others.
func (r *runner) profileKeys(ctx context.Context, pairs []*pair) error {
	var keys []*key
	seen := map[*key]bool{}
	for _, p := range pairs {
		if k := p.parent; len(k.Cols) == 1 && !seen[k] && r.size(k.Table).ok {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	return r.each(ctx, "profile", len(keys), func(ctx context.Context, i int) error {
		prof, err := r.profile(ctx, keys[i])
		if err != nil {
			return r.warn(ctx, "profile key "+keyString(keys[i]), err)
		}
		r.mu.Lock()
		r.profiles[keys[i]] = prof
		r.mu.Unlock()
		return nil
	})
}

func (r *runner) profile(ctx context.Context, k *key) (keyProfile, error) {
	c := k.Cols[0]
	if integerType(c.BaseType) {
		var lo, hi *int64
		err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
			col := pgx.Identifier{c.Name}.Sanitize()
			return q.QueryRow(ctx, fmt.Sprintf("SELECT min(%s)::int8, max(%s)::int8 FROM %s", col, col, k.Table.ident())).Scan(&lo, &hi)
		})
		if err != nil || lo == nil || hi == nil {
			return keyProfile{ok: err == nil}, err
		}
		return keyProfile{ok: true, integer: true, min: *lo, max: *hi}, nil
	}
	vals, err := r.sample(ctx, k.Table, k.Cols, r.size(k.Table))
	if err != nil {
		return keyProfile{}, err
	}
	shapes := map[string]bool{}
	for _, v := range vals {
		shapes[shape(v[0])] = true
	}
	return keyProfile{ok: true, shapes: shapes}, nil
}

func (r *runner) profileOf(k *key) keyProfile {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.profiles[k]
}

// shape is a value's length and the classes of characters it uses: a uuid
// and "SITE-0000001" never share one, two uuids almost always do.
func shape(v string) string {
	var upper, lower, digit, dash, other bool
	for _, c := range v {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		case c == '-' || c == '_':
			dash = true
		default:
			other = true
		}
	}
	b := func(x bool) byte {
		if x {
			return '1'
		}
		return '0'
	}
	return strconv.Itoa(len(v)) + ":" + string([]byte{b(upper), b(lower), b(digit), b(dash), b(other)})
}

// choose decides, per pair, whether its sample is looked up in the parent:
// always with name evidence; without, only when the values could be the
// parent's (in an integer key's range, of its shapes). A dense integer key
// holding the values' range is recorded as overlapping without a lookup:
// such overlap is expected by chance and can only lower other candidates.
func (r *runner) choose(pairs []*pair) []*pair {
	var probe []*pair
	for _, p := range pairs {
		if p.child.unsampled || len(p.child.values) == 0 || !r.size(p.parent.Table).ok {
			continue
		}
		prof := r.profileOf(p.parent)
		p.chance = r.chance(p, prof)
		if p.name.Score > 0 {
			probe = append(probe, p)
			continue
		}
		if len(p.parent.Cols) > 1 {
			continue
		}
		switch {
		case prof.integer:
			within := withinRange(p.child.values, prof)
			if within < competitorFloor {
				continue
			}
			if p.chance >= 0.5 {
				p.estimated, p.estRatio = true, round3(within*p.chance)
				continue
			}
			probe = append(probe, p)
		case prof.shapes != nil:
			if shapeFit(p.child.values, prof.shapes) >= 0.5 {
				probe = append(probe, p)
			}
		case prof.ok:
			probe = append(probe, p)
		}
	}
	return probe
}

// chance that one value lands in the parent key by coincidence: the
// density of an integer key over its range, zero for uuids, a small
// constant for other types.
func (r *runner) chance(p *pair, prof keyProfile) float64 {
	switch {
	case len(p.parent.Cols) > 1:
		return 0.01
	case prof.integer:
		size := r.size(p.parent.Table)
		if size.lowerBound {
			// Without a row count the key may be dense: assume it is.
			return 1
		}
		span := float64(prof.max-prof.min) + 1
		return min(1, float64(size.rows)/span)
	case p.parent.Cols[0].BaseType == oidUUID:
		return 0
	case integerType(p.parent.Cols[0].BaseType):
		return 1
	}
	return 0.05
}

func withinRange(values [][]string, prof keyProfile) float64 {
	in := 0
	for _, v := range values {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= prof.min && n <= prof.max {
			in++
		}
	}
	return float64(in) / float64(len(values))
}

func shapeFit(values [][]string, shapes map[string]bool) float64 {
	in := 0
	for _, v := range values {
		if shapes[shape(v[0])] {
			in++
		}
	}
	return float64(in) / float64(len(values))
}

// probe looks each chosen pair's sample up in its parent, one query per
// child set and up to probeChunk parents.
func (r *runner) probe(ctx context.Context, pairs []*pair) error {
	chosen := r.choose(pairs)
	type job struct {
		set   *colset
		pairs []*pair
	}
	var jobs []job
	bySet := map[*colset][]*pair{}
	var order []*colset
	for _, p := range chosen {
		if _, ok := bySet[p.child]; !ok {
			order = append(order, p.child)
		}
		bySet[p.child] = append(bySet[p.child], p)
	}
	for _, s := range order {
		ps := bySet[s]
		for i := 0; i < len(ps); i += probeChunk {
			jobs = append(jobs, job{s, ps[i:min(i+probeChunk, len(ps))]})
		}
	}
	return r.each(ctx, "probe", len(jobs), func(ctx context.Context, i int) error {
		j := jobs[i]
		counts, err := r.lookup(ctx, j.set, j.pairs)
		if err != nil {
			return r.warn(ctx, "look up "+j.set.t.display()+"("+strings.Join(colNames(j.set.cols), ", ")+")", err)
		}
		for k, p := range j.pairs {
			p.included, p.probed = counts[k], true
		}
		return nil
	})
}

func (r *runner) lookup(ctx context.Context, s *colset, pairs []*pair) ([]int, error) {
	args := make([]any, len(s.cols))
	for c := range s.cols {
		col := make([]string, len(s.values))
		for i, v := range s.values {
			col[i] = v[c]
		}
		args[c] = col
	}
	counts := make([]int, len(pairs))
	ptrs := make([]any, len(pairs))
	for i := range counts {
		ptrs[i] = &counts[i]
	}
	err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
		return q.QueryRow(ctx, lookupSQL(s, pairs), args...).Scan(ptrs...)
	})
	return counts, err
}

// lookupSQL counts, per parent, the sampled tuples its key holds. Values
// are cast back to the child's type so the parent's unique index serves
// the lookup.
func lookupSQL(s *colset, pairs []*pair) string {
	arrays := make([]string, len(s.cols))
	names := make([]string, len(s.cols))
	for i := range s.cols {
		arrays[i] = fmt.Sprintf("$%d::text[]", i+1)
		names[i] = "c" + strconv.Itoa(i)
	}
	sels := make([]string, len(pairs))
	for i, p := range pairs {
		conds := make([]string, len(s.cols))
		for c, col := range s.cols {
			conds[c] = fmt.Sprintf("x.%s = v.c%d::%s", pgx.Identifier{p.parent.Cols[c].Name}.Sanitize(), c, col.TypeName)
		}
		sels[i] = fmt.Sprintf("count(*) FILTER (WHERE EXISTS (SELECT 1 FROM %s x WHERE %s))::int",
			p.parent.Table.ident(), strings.Join(conds, " AND "))
	}
	return fmt.Sprintf("SELECT %s FROM unnest(%s) AS v(%s)", strings.Join(sels, ", "), strings.Join(arrays, ", "), strings.Join(names, ", "))
}

// checkExact replaces the sample's figures by the whole table's for the
// surviving pairs: rows, nulls and distinct values of each child set, and
// orphan rows and values per pair. A check that times out keeps the
// sample's figures and becomes a warning.
func (r *runner) checkExact(ctx context.Context, pairs []*pair) error {
	var sets []*colset
	seen := map[*colset]bool{}
	for _, p := range pairs {
		if !seen[p.child] {
			seen[p.child] = true
			sets = append(sets, p.child)
		}
	}
	if err := r.each(ctx, "exact", len(sets), func(ctx context.Context, i int) error {
		return r.childStats(ctx, sets[i])
	}); err != nil {
		return err
	}
	return r.each(ctx, "orphans", len(pairs), func(ctx context.Context, i int) error {
		return r.orphans(ctx, pairs[i])
	})
}

func (r *runner) childStats(ctx context.Context, s *colset) error {
	distinct := "count(DISTINCT " + quotedCols("", s.cols)[0] + ")"
	if len(s.cols) > 1 {
		distinct = "count(DISTINCT row(" + strings.Join(quotedCols("", s.cols), ", ") + ")) FILTER (WHERE " + notNull("", s.cols) + ")"
	}
	sql := fmt.Sprintf("SELECT count(*), count(*) FILTER (WHERE NOT (%s)), %s FROM %s", notNull("", s.cols), distinct, s.t.ident())
	err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
		return q.QueryRow(ctx, sql).Scan(&s.rows, &s.nulls, &s.distinct)
	})
	if err != nil {
		return r.warn(ctx, "count "+s.t.display()+"("+strings.Join(colNames(s.cols), ", ")+")", err)
	}
	s.exact = true
	return nil
}

func (r *runner) orphans(ctx context.Context, p *pair) error {
	if !p.child.exact {
		return nil
	}
	distinct := "count(DISTINCT " + quotedCols("c.", p.child.cols)[0] + ")"
	if len(p.child.cols) > 1 {
		distinct = "count(DISTINCT row(" + strings.Join(quotedCols("c.", p.child.cols), ", ") + "))"
	}
	conds := make([]string, len(p.child.cols))
	for i, col := range p.child.cols {
		conds[i] = "x." + pgx.Identifier{p.parent.Cols[i].Name}.Sanitize() + " = c." + pgx.Identifier{col.Name}.Sanitize()
	}
	sql := fmt.Sprintf("SELECT count(*), %s FROM %s c WHERE %s AND NOT EXISTS (SELECT 1 FROM %s x WHERE %s)",
		distinct, p.child.t.ident(), notNull("c.", p.child.cols), p.parent.Table.ident(), strings.Join(conds, " AND "))
	err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
		return q.QueryRow(ctx, sql).Scan(&p.orphanRows, &p.orphanDistinct)
	})
	if err != nil {
		p.exactErr = err.Error()
		return r.warn(ctx, "orphans of "+p.child.t.display()+"("+strings.Join(colNames(p.child.cols), ", ")+") → "+keyString(p.parent), err)
	}
	p.exact = true
	return nil
}
