package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Expectations are the figures a runbook states for the database after the
// rollout ("45+ FKs", "21 CHECK constraints", "16 tables", "0 orphans",
// "types aligned"). Each environment's figures are measured after its
// constraints are validated; one that does not hold stops the rollout at a
// gate with the figures. Counts cover the environment's schemas (the
// worker's schemas setting, else the plan's). A nil field states nothing.
type Expectations struct {
	// ForeignKeys counts validated foreign keys (a NOT VALID one does not
	// enforce anything on existing rows, so it does not count).
	ForeignKeys      *Count `json:"foreign_keys,omitempty" yaml:"foreign_keys,omitempty"`
	CheckConstraints *Count `json:"check_constraints,omitempty" yaml:"check_constraints,omitempty"`
	// Tables counts ordinary and partitioned tables (not partitions).
	Tables *Count `json:"tables,omitempty" yaml:"tables,omitempty"`
	// Orphans counts the planned constraints' orphans after remediation.
	Orphans *Count `json:"orphans,omitempty" yaml:"orphans,omitempty"`
	// TypesAligned: every foreign key's columns have the types of the
	// columns they reference.
	TypesAligned *bool `json:"types_aligned,omitempty" yaml:"types_aligned,omitempty"`
	// Queries name read-only runbook queries the worker's configuration
	// defines for the environment (SQL never comes with a plan); each must
	// exist there and return what it expects.
	Queries []string `json:"queries,omitempty" yaml:"queries,omitempty,flow"`
}

// Empty reports whether e states nothing.
func (e *Expectations) Empty() bool {
	return e == nil || (e.ForeignKeys == nil && e.CheckConstraints == nil && e.Tables == nil && e.Orphans == nil &&
		e.TypesAligned == nil && len(e.Queries) == 0)
}

// Validate names every problem (bad ranges, empty or repeated query names).
func (e *Expectations) Validate() error {
	if e == nil {
		return nil
	}
	var errs []error
	for _, f := range []struct {
		name string
		c    *Count
	}{{"foreign_keys", e.ForeignKeys}, {"check_constraints", e.CheckConstraints}, {"tables", e.Tables}, {"orphans", e.Orphans}} {
		if err := f.c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		}
	}
	seen := map[string]bool{}
	for i, q := range e.Queries {
		switch {
		case strings.TrimSpace(q) == "":
			errs = append(errs, fmt.Errorf("queries[%d]: empty name", i))
		case seen[q]:
			errs = append(errs, fmt.Errorf("queries[%d]: %q is named twice", i, q))
		}
		seen[q] = true
	}
	return errors.Join(errs...)
}

// Count is an expected number: exactly Eq, or at least Min and/or at most
// Max. In YAML it is a number (21: exactly), "45+" (at least 45) or a
// mapping {min: 45, max: 60} / {eq: 21}.
type Count struct {
	Eq  *int64 `json:"eq,omitempty" yaml:"eq,omitempty"`
	Min *int64 `json:"min,omitempty" yaml:"min,omitempty"`
	Max *int64 `json:"max,omitempty" yaml:"max,omitempty"`
}

// Exactly is the count n.
func Exactly(n int64) *Count { return &Count{Eq: &n} }

// AtLeast is the count n or more.
func AtLeast(n int64) *Count { return &Count{Min: &n} }

// Holds reports whether n meets the count.
func (c *Count) Holds(n int64) bool {
	if c == nil {
		return true
	}
	return (c.Eq == nil || n == *c.Eq) && (c.Min == nil || n >= *c.Min) && (c.Max == nil || n <= *c.Max)
}

// String is the count as a target: "= 21", "≥ 45", "45–60", "≤ 0".
func (c *Count) String() string {
	switch {
	case c == nil:
		return "any"
	case c.Eq != nil:
		return fmt.Sprintf("= %d", *c.Eq)
	case c.Min != nil && c.Max != nil:
		return fmt.Sprintf("%d–%d", *c.Min, *c.Max)
	case c.Min != nil:
		return fmt.Sprintf("≥ %d", *c.Min)
	case c.Max != nil:
		return fmt.Sprintf("≤ %d", *c.Max)
	}
	return "any"
}

// Validate refuses an empty count, negative figures, eq with a range, and
// min above max.
func (c *Count) Validate() error {
	switch {
	case c == nil:
		return nil
	case c.Eq == nil && c.Min == nil && c.Max == nil:
		return errors.New("states no figure: want a number, \"45+\" or {min: …, max: …}")
	case c.Eq != nil && (c.Min != nil || c.Max != nil):
		return errors.New("eq and min/max contradict each other: use one")
	case c.Min != nil && c.Max != nil && *c.Min > *c.Max:
		return fmt.Errorf("min %d is above max %d", *c.Min, *c.Max)
	}
	for _, v := range []*int64{c.Eq, c.Min, c.Max} {
		if v != nil && *v < 0 {
			return fmt.Errorf("%d is negative", *v)
		}
	}
	return nil
}

// UnmarshalYAML accepts 21, "45+" and {eq|min|max: n}.
func (c *Count) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		type plain Count
		var p plain
		if err := n.Decode(&p); err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*c = Count(p)
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a number, \"45+\" or {min: …, max: …}", n.Line)
	}
	v, err := parseCount(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*c = v
	return nil
}

// UnmarshalJSON accepts the YAML forms too (a plan file may be JSON).
func (c *Count) UnmarshalJSON(b []byte) error {
	type plain Count
	if len(b) > 0 && b[0] == '{' {
		var p plain
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		*c = Count(p)
		return nil
	}
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	v, err := parseCount(fmt.Sprint(raw))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

func parseCount(s string) (Count, error) {
	s = strings.TrimSpace(s)
	min := strings.HasSuffix(s, "+")
	n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(s, "+")), 10, 64)
	if err != nil {
		return Count{}, fmt.Errorf("%q is not a count: want a number, \"45+\" or {min: …, max: …}", s)
	}
	if min {
		return Count{Min: &n}, nil
	}
	return Count{Eq: &n}, nil
}
