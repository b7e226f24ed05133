package loadgen_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/perf/loadgen"
)

func TestPositional(t *testing.T) {
	cases := []struct {
		in, want string
		names    []string
	}{
		{"SELECT :a, :b, :a", "SELECT $1, $2, $1", []string{"a", "b"}},
		{"SELECT :id::text", "SELECT $1::text", []string{"id"}},
		{"SELECT ':not', \":nor\" FROM t WHERE x = :x", "SELECT ':not', \":nor\" FROM t WHERE x = $1", []string{"x"}},
		{"SELECT 1 -- :comment\n, :y /* :block */", "SELECT 1 -- :comment\n, $1 /* :block */", []string{"y"}},
		{"SELECT $$ :body $$, :z, $1", "SELECT $$ :body $$, $1, $1", []string{"z"}},
		{"SELECT 'it''s :q', :w_1", "SELECT 'it''s :q', $1", []string{"w_1"}},
		{"SELECT a[1:2] FROM t", "SELECT a[1:2] FROM t", nil},
	}
	for _, c := range cases {
		got, names := loadgen.Positional(c.in)
		assert.Equal(t, c.want, got, c.in)
		assert.Equal(t, c.names, names, c.in)
	}
}

func TestParseWorkload(t *testing.T) {
	cases := []struct {
		name, yaml, err string
		ops             int
	}{
		{name: "map params", ops: 2, yaml: `
params:
  ws: SELECT id FROM ws
operations:
  - name: a
    statements: ["INSERT INTO t VALUES (:ws)"]
  - name: b
    weight: 2
    units: 100
    sql: SELECT * FROM t WHERE ws = :ws`},
		{name: "list params, correlated", ops: 1, yaml: `
operations:
  - name: a
    params:
      - names: [ws, cv]
        select: SELECT ws.id, cv.id FROM ws JOIN cv USING (id)
      - name: x
        query: SELECT 1
    statements: ["INSERT INTO t VALUES (:ws, :cv, :x)"]`},
		{name: "nested under workload", ops: 1, yaml: `
workload:
  operations:
    - name: a
      statements: ["SELECT 1"]`},
		{name: "empty", yaml: `operations: []`, err: "no operations"},
		{name: "undefined parameter", yaml: `
operations:
  - name: a
    statements: ["SELECT :nope"]`, err: "uses :nope but no parameter nope is defined"},
		{name: "duplicate name", yaml: `
operations:
  - {name: a, statements: ["SELECT 1"]}
  - {name: a, statements: ["SELECT 2"]}`, err: `operation "a" appears twice`},
		{name: "no statements", yaml: `
operations:
  - {name: a}`, err: "has no statements"},
		{name: "negative weight", yaml: `
operations:
  - {name: a, weight: -1, statements: ["SELECT 1"]}`, err: "negative"},
		{name: "param without select", yaml: `
operations:
  - name: a
    params: [{name: x}]
    statements: ["SELECT :x"]`, err: "has no select"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := loadgen.ParseWorkload([]byte(c.yaml))
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			assert.Len(t, w.Operations, c.ops)
		})
	}
}
