// Package loadgen describes the runs of fkrollout's built-in load generator
// (what a k6 script does in a hand-run perf test): a workload is a set of named, weighted operations,
// each a parameterised SQL transaction; a run's options and its report are
// here too. It links no database driver, so workflow code can carry a
// Report; loadgen/runner executes workloads against PostgreSQL.
package loadgen

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Workload is what the perf phase runs before and after the constraints.
//
//	params:                      # shared by every operation (optional)
//	  workspace_id: SELECT id FROM workspaces
//	operations:
//	  - name: create_workflow
//	    weight: 3                # relative frequency, default 1
//	    units: 1                 # rows per operation; thresholds apply per unit
//	    params:                  # list form: several correlated columns
//	      - names: [workspace_id, config_version_id]
//	        select: SELECT ws.id, cv.id FROM workspaces ws JOIN config_versions cv ON cv.workspace_id = ws.id
//	    statements:
//	      - INSERT INTO workflow_instances (id, workspace_id, config_version_id)
//	        VALUES (gen_random_uuid()::text, :workspace_id, :config_version_id)
//
// A :name in a statement (outside quotes, comments and :: casts) is bound to
// a value drawn at random, per iteration, from the rows its SELECT returned
// when the run started; correlated names of one source come from one row.
type Workload struct {
	Params     Params      `json:"params,omitempty" yaml:"params,omitempty"`
	Operations []Operation `json:"operations" yaml:"operations"`
}

// Operation is one named transaction of the workload.
type Operation struct {
	Name   string  `json:"name" yaml:"name"`
	Weight float64 `json:"weight,omitempty" yaml:"weight,omitempty"`
	// Units is how many application rows one execution stands for (a
	// "Bulk import (100)" inserts 100): the perf thresholds apply per unit.
	Units      int      `json:"units,omitempty" yaml:"units,omitempty"`
	Params     Params   `json:"params,omitempty" yaml:"params,omitempty"`
	Statements []string `json:"statements" yaml:"statements"`
	// SQL is accepted as a shorthand for a single statement.
	SQL string `json:"sql,omitempty" yaml:"sql,omitempty"`
}

// Param is one parameter source: a SELECT whose columns, in order, give the
// values of Names.
type Param struct {
	Names  []string `json:"names" yaml:"names"`
	Select string   `json:"select" yaml:"select"`
}

// Params accepts either a mapping (name: SELECT ...) or a list of
// {name|names, select|query|sql}.
type Params []Param

// UnmarshalYAML implements both accepted shapes.
func (p *Params) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			switch v.Kind {
			case yaml.ScalarNode:
				*p = append(*p, Param{Names: []string{k.Value}, Select: v.Value})
			case yaml.MappingNode:
				var one rawParam
				if err := v.Decode(&one); err != nil {
					return fmt.Errorf("parameter %s: %w", k.Value, err)
				}
				pp, err := one.param()
				if err != nil {
					return fmt.Errorf("parameter %s: %w", k.Value, err)
				}
				if len(pp.Names) == 0 {
					pp.Names = []string{k.Value}
				}
				*p = append(*p, pp)
			default:
				return fmt.Errorf("line %d: parameter %s: want a SELECT string", v.Line, k.Value)
			}
		}
		return nil
	case yaml.SequenceNode:
		for _, item := range n.Content {
			var one rawParam
			if err := item.Decode(&one); err != nil {
				return fmt.Errorf("line %d: parameter: %w", item.Line, err)
			}
			pp, err := one.param()
			if err != nil {
				return fmt.Errorf("line %d: %w", item.Line, err)
			}
			*p = append(*p, pp)
		}
		return nil
	}
	return fmt.Errorf("line %d: params: want a mapping or a list", n.Line)
}

type rawParam struct {
	Name   string   `yaml:"name"`
	Names  []string `yaml:"names"`
	Select string   `yaml:"select"`
	Query  string   `yaml:"query"`
	SQL    string   `yaml:"sql"`
	From   string   `yaml:"from"`
}

func (r rawParam) param() (Param, error) {
	names := r.Names
	if r.Name != "" {
		names = append([]string{r.Name}, names...)
	}
	sel := firstNonEmpty(r.Select, r.Query, r.SQL, r.From)
	if sel == "" {
		return Param{}, fmt.Errorf("parameter %s has no select", strings.Join(names, ","))
	}
	return Param{Names: names, Select: sel}, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// ParseWorkload reads a YAML (or JSON) workload and checks it completely:
// names, weights, statements and every :parameter's source, so a typo fails
// before any load reaches a database.
func ParseWorkload(data []byte) (Workload, error) {
	var w Workload
	if err := yaml.Unmarshal(data, &w); err != nil {
		return Workload{}, fmt.Errorf("parse workload: %w", err)
	}
	// Some workload files nest everything under "workload:".
	if len(w.Operations) == 0 {
		var wrapped struct {
			Workload Workload `yaml:"workload"`
		}
		if err := yaml.Unmarshal(data, &wrapped); err == nil && len(wrapped.Workload.Operations) > 0 {
			w = wrapped.Workload
		}
	}
	if err := w.Validate(); err != nil {
		return Workload{}, err
	}
	return w, nil
}

// Validate checks the workload without touching a database.
func (w Workload) Validate() error {
	if len(w.Operations) == 0 {
		return errors.New("workload: no operations")
	}
	seen := map[string]bool{}
	for i, op := range w.Operations {
		if strings.TrimSpace(op.Name) == "" {
			return fmt.Errorf("workload: operation %d has no name", i+1)
		}
		if seen[op.Name] {
			return fmt.Errorf("workload: operation %q appears twice", op.Name)
		}
		seen[op.Name] = true
		if op.Weight < 0 {
			return fmt.Errorf("workload: operation %q: weight %g is negative", op.Name, op.Weight)
		}
		if op.Units < 0 {
			return fmt.Errorf("workload: operation %q: units %d is negative", op.Name, op.Units)
		}
		if _, err := w.Compile(op); err != nil {
			return err
		}
	}
	return nil
}

func (op Operation) statements() []string {
	var out []string
	if strings.TrimSpace(op.SQL) != "" {
		out = append(out, op.SQL)
	}
	for _, s := range op.Statements {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

func (op Operation) weight() float64 {
	if op.Weight == 0 {
		return 1
	}
	return op.Weight
}

func (op Operation) units() int {
	if op.Units <= 0 {
		return 1
	}
	return op.Units
}

// CompiledOp is an operation ready to run: positional SQL, and for each
// statement where every $n comes from (source index, column index).
type CompiledOp struct {
	Name    string
	Weight  float64
	Units   int
	Stmts   []CompiledStmt
	Sources []Param // the sources this operation draws from
}

// CompiledStmt is one statement with $n placeholders and, per $n, the
// source value bound to it.
type CompiledStmt struct {
	SQL  string
	Args []ValueRef
}

// ValueRef names a column of one of an operation's parameter sources.
type ValueRef struct{ Source, Column int }

// Compile resolves op's :name parameters against the workload's and its
// own parameter sources.
func (w Workload) Compile(op Operation) (CompiledOp, error) {
	stmts := op.statements()
	if len(stmts) == 0 {
		return CompiledOp{}, fmt.Errorf("workload: operation %q has no statements", op.Name)
	}
	// Operation params shadow workload params of the same name.
	where := map[string]ValueRef{}
	var sources []Param
	add := func(ps Params, shadow bool) error {
		for _, p := range ps {
			if strings.TrimSpace(p.Select) == "" || len(p.Names) == 0 {
				return fmt.Errorf("workload: operation %q: parameter source needs names and a select", op.Name)
			}
			idx := len(sources)
			sources = append(sources, p)
			for c, n := range p.Names {
				if !isIdent(n) {
					return fmt.Errorf("workload: operation %q: parameter name %q is not an identifier", op.Name, n)
				}
				if _, dup := where[n]; dup && !shadow {
					return fmt.Errorf("workload: operation %q: parameter %q defined twice", op.Name, n)
				}
				where[n] = ValueRef{idx, c}
			}
		}
		return nil
	}
	if err := add(w.Params, false); err != nil {
		return CompiledOp{}, err
	}
	if err := add(op.Params, true); err != nil {
		return CompiledOp{}, err
	}
	c := CompiledOp{Name: op.Name, Weight: op.weight(), Units: op.units(), Sources: sources}
	for i, s := range stmts {
		sql, names := Positional(s)
		cs := CompiledStmt{SQL: sql}
		for _, n := range names {
			ref, ok := where[n]
			if !ok {
				return CompiledOp{}, fmt.Errorf("workload: operation %q statement %d uses :%s but no parameter %s is defined", op.Name, i+1, n, n)
			}
			cs.Args = append(cs.Args, ref)
		}
		c.Stmts = append(c.Stmts, cs)
	}
	return c, nil
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Positional rewrites :name placeholders to $1, $2, ... (one number per
// distinct name, in order of first appearance) and returns the names.
// Quoted strings, quoted identifiers, dollar-quoted bodies, comments and
// :: casts are left alone.
func Positional(sql string) (string, []string) {
	var b strings.Builder
	var names []string
	num := map[string]int{}
	n := len(sql)
	for i := 0; i < n; {
		ch := sql[i]
		switch {
		case ch == '\'' || ch == '"':
			j := i + 1
			for j < n {
				if sql[j] == ch {
					if j+1 < n && sql[j+1] == ch { // doubled quote
						j += 2
						continue
					}
					break
				}
				j++
			}
			j = min(j+1, n)
			b.WriteString(sql[i:j])
			i = j
		case ch == '-' && i+1 < n && sql[i+1] == '-':
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				j = n - i
			}
			b.WriteString(sql[i : i+j])
			i += j
		case ch == '/' && i+1 < n && sql[i+1] == '*':
			j := strings.Index(sql[i+2:], "*/")
			end := n
			if j >= 0 {
				end = i + 2 + j + 2
			}
			b.WriteString(sql[i:end])
			i = end
		case ch == '$' && dollarTag(sql[i:]) != "":
			tag := dollarTag(sql[i:])
			j := strings.Index(sql[i+len(tag):], tag)
			end := n
			if j >= 0 {
				end = i + len(tag) + j + len(tag)
			}
			b.WriteString(sql[i:end])
			i = end
		case ch == ':' && i+1 < n && sql[i+1] == ':':
			b.WriteString("::")
			i += 2
		case ch == ':' && i+1 < n && (sql[i+1] == '_' || isLetter(sql[i+1])) && (i == 0 || sql[i-1] != ':'):
			j := i + 1
			for j < n && (sql[j] == '_' || isLetter(sql[j]) || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			name := sql[i+1 : j]
			k, ok := num[name]
			if !ok {
				names = append(names, name)
				k = len(names)
				num[name] = k
			}
			fmt.Fprintf(&b, "$%d", k)
			i = j
		default:
			b.WriteByte(ch)
			i++
		}
	}
	return b.String(), names
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// dollarTag returns "$tag$" when s starts with a dollar-quote opener.
func dollarTag(s string) string {
	if len(s) < 2 || s[0] != '$' {
		return ""
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '$' {
			return s[:i+1]
		}
		if !(c == '_' || isLetter(c) || i > 1 && c >= '0' && c <= '9') {
			return ""
		}
	}
	return ""
}
