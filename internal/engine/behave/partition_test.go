package behave

import (
	"math"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The bounds are what pg_get_expr(relpartbound, oid) prints on PostgreSQL 15.
func TestParseBound(t *testing.T) {
	s := func(v string) *string { return &v }
	lit := func(v string) rangeDatum { return rangeDatum{val: s(v)} }
	tests := []struct {
		in   string
		want bound
	}{
		{`DEFAULT`, bound{kind: boundDefault}},
		{`FOR VALUES WITH (modulus 4, remainder 0)`, bound{kind: boundHash}},
		{`FOR VALUES IN ('a', 'it''s', NULL)`, bound{kind: boundList, list: []*string{s("a"), s("it's"), nil}}},
		{`FOR VALUES IN (true)`, bound{kind: boundList, list: []*string{s("true")}}},
		{`FOR VALUES IN (1, '-2')`, bound{kind: boundList, list: []*string{s("1"), s("-2")}}},
		{`FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`, bound{kind: boundRange, from: []rangeDatum{lit("2024-01-01")}, to: []rangeDatum{lit("2024-02-01")}}},
		{`FOR VALUES FROM (MINVALUE) TO ('2024-01-01')`, bound{kind: boundRange, from: []rangeDatum{{min: true}}, to: []rangeDatum{lit("2024-01-01")}}},
		{`FOR VALUES FROM ('-5', '-1.5', '2024-01-01 00:00:00+00') TO (10, MAXVALUE, MAXVALUE)`, bound{kind: boundRange,
			from: []rangeDatum{lit("-5"), lit("-1.5"), lit("2024-01-01 00:00:00+00")},
			to:   []rangeDatum{lit("10"), {max: true}, {max: true}}}},
		{`FOR VALUES IN ('a'`, bound{}},
		{`FOR VALUES IN ('unterminated)`, bound{}},
		{`FOR VALUES FROM (1) TO`, bound{}},
		{`FOR VALUES IN (MINVALUE)`, bound{}},
		{``, bound{}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, parseBound(tc.in), tc.in)
	}
}

func TestBoundRoutes(t *testing.T) {
	tbl := &tableInfo{byName: map[string]int{}}
	for _, c := range []column{{Name: "id", BaseType: "int8"}, {Name: "small", BaseType: "int2"}, {Name: "day", BaseType: "date"}, {Name: "region", BaseType: "text"}} {
		tbl.byName[c.Name] = len(tbl.Columns)
		tbl.Columns = append(tbl.Columns, c)
	}
	base := route{keys: map[string]keyChoice{"region": exact(strPtr("eu"))}}
	tests := []struct {
		name  string
		keys  []string
		bound string
		want  []string // route.String() and rank per route
	}{
		{"range date takes FROM", []string{"day"}, `FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')`, []string{`"day"="2024-01-01","region"="eu" 0`}},
		{"range int spans the bounds", []string{"id"}, `FOR VALUES FROM (1000) TO (2000)`, []string{`"id"=[1000..1999],"region"="eu" 0`}},
		{"range int MAXVALUE is the type's", []string{"small"}, `FOR VALUES FROM (100) TO (MAXVALUE)`, []string{`"region"="eu","small"=[100..32767] 0`}},
		{"range int MINVALUE is the type's", []string{"id"}, `FOR VALUES FROM (MINVALUE) TO ('-5')`, []string{`"id"=[-9223372036854775808..-6],"region"="eu" 0`}},
		{"range date MINVALUE is left to chance", []string{"day"}, `FOR VALUES FROM (MINVALUE) TO ('2024-01-01')`, []string{`"region"="eu" 2`}},
		{"range two columns stop at MINVALUE", []string{"day", "id"}, `FOR VALUES FROM ('2024-01-01', MINVALUE) TO ('2024-02-01', MINVALUE)`, []string{`"day"="2024-01-01","region"="eu" 2`}},
		{"range expression key", []string{""}, `FOR VALUES FROM (1) TO (2)`, []string{`"region"="eu" 2`}},
		{"list: one route per value, NULL last", []string{"region"}, `FOR VALUES IN (NULL, 'us', 'ca')`, []string{`"region"="us" 0`, `"region"="ca" 0`, `"region"=NULL 0`}},
		{"list at most four values", []string{"day"}, `FOR VALUES IN ('2024-01-01', '2024-01-02', '2024-01-03', '2024-01-04', '2024-01-05')`, []string{
			`"day"="2024-01-01","region"="eu" 0`, `"day"="2024-01-02","region"="eu" 0`, `"day"="2024-01-03","region"="eu" 0`, `"day"="2024-01-04","region"="eu" 0`}},
		{"hash", []string{"id"}, `FOR VALUES WITH (modulus 2, remainder 1)`, []string{`"region"="eu" 1`}},
		{"default", []string{"id"}, `DEFAULT`, []string{`"region"="eu" 3`}},
		{"unparsable", []string{"id"}, `FOR SOMETHING NEW`, []string{`"region"="eu" 3`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range tbl.boundRoutes(base, tc.keys, parseBound(tc.bound)) {
				got = append(got, r.String()+" "+strconv.Itoa(r.rank))
			}
			assert.Equal(t, tc.want, got)
			assert.Len(t, base.keys, 1, "base route must not change")
		})
	}
}

func TestKeyChoice(t *testing.T) {
	full := keyChoice{span: true, lo: math.MinInt64, hi: math.MaxInt64}
	narrow := keyChoice{span: true, lo: -3, hi: -1}
	for range 200 {
		for _, k := range []keyChoice{full, narrow} {
			v := k.pick()
			require.NotNil(t, v)
			assert.True(t, k.admits(v), "%s picked %s", k, *v)
		}
	}
	assert.False(t, narrow.admits(strPtr("0")))
	assert.False(t, narrow.admits(nil))
	assert.False(t, narrow.admits(strPtr("x")))
	assert.True(t, exact(nil).admits(nil))
	assert.False(t, exact(nil).admits(strPtr("a")))
	assert.True(t, exact(strPtr("a")).admits(strPtr("a")))
	assert.False(t, exact(strPtr("a")).admits(nil))

	tbl := &tableInfo{Routes: []route{
		{keys: map[string]keyChoice{"tenant": exact(strPtr("1")), "day": exact(strPtr("2024-01-01"))}},
		{keys: map[string]keyChoice{"tenant": exact(strPtr("2")), "day": exact(strPtr("2024-01-01"))}},
	}}
	assert.Equal(t, values{"day": strPtr("2024-01-01")}, tbl.routeValues(values{"tenant": strPtr("2")}, 0), "the route agreeing with a fixed value")
	assert.Equal(t, values{"day": strPtr("2024-01-01")}, tbl.routeValues(values{"tenant": strPtr("9")}, 0), "any route when none agrees")
	assert.Equal(t, values{"tenant": strPtr("2"), "day": strPtr("2024-01-01")}, tbl.routeValues(nil, 1), "attempt 1 takes the next route")
	assert.Nil(t, (&tableInfo{}).routeValues(nil, 0), "plain table")
}
