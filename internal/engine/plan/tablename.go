package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// DefaultSchema is the schema assumed when a plan names a table without one.
const DefaultSchema = "public"

// ParseIdent reads one SQL identifier the way PostgreSQL does: a bare word
// is folded to lower case, a double-quoted one is kept exactly (with ""
// standing for one quote character).
func ParseIdent(s string) (string, error) {
	parts, err := splitQualified(s)
	if err != nil {
		return "", err
	}
	if len(parts) != 1 {
		return "", fmt.Errorf("identifier %q: unexpected '.' (quote the name if the dot belongs to it)", s)
	}
	return parts[0], nil
}

// ParseTableName reads "table", "schema.table" or quoted forms such as
// `"My Schema"."Odd.Table"`. Schema is left empty when not written; plan
// parsers fill in DefaultSchema.
func ParseTableName(s string) (TableName, error) {
	parts, err := splitQualified(s)
	if err != nil {
		return TableName{}, err
	}
	switch len(parts) {
	case 1:
		return TableName{Name: parts[0]}, nil
	case 2:
		return TableName{Schema: parts[0], Name: parts[1]}, nil
	}
	return TableName{}, fmt.Errorf("table name %q: want table or schema.table, got %d dot-separated parts", s, len(parts))
}

// splitQualified splits a dotted identifier chain, honouring double quotes.
func splitQualified(s string) ([]string, error) {
	var parts []string
	i := 0
	n := len(s)
	for {
		for i < n && isSpace(s[i]) {
			i++
		}
		if i >= n {
			return nil, fmt.Errorf("identifier %q: empty name", s)
		}
		var part string
		if s[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < n {
				if s[i] == '"' {
					if i+1 < n && s[i+1] == '"' {
						b.WriteByte('"')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, fmt.Errorf("identifier %q: unterminated double quote", s)
			}
			part = b.String()
			if part == "" {
				return nil, fmt.Errorf("identifier %q: zero-length quoted name", s)
			}
		} else {
			start := i
			for i < n && s[i] != '.' && !isSpace(s[i]) {
				c := s[i]
				ok := c == '_' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					(i > start && ((c >= '0' && c <= '9') || c == '$'))
				if !ok {
					return nil, fmt.Errorf("identifier %q: character %q needs the name to be double-quoted", s, c)
				}
				i++
			}
			if i == start {
				return nil, fmt.Errorf("identifier %q: empty name", s)
			}
			// PostgreSQL folds only ASCII letters in bare identifiers.
			part = strings.Map(func(r rune) rune {
				if r >= 'A' && r <= 'Z' {
					return r + ('a' - 'A')
				}
				return r
			}, s[start:i])
		}
		parts = append(parts, part)
		for i < n && isSpace(s[i]) {
			i++
		}
		if i >= n {
			return parts, nil
		}
		if s[i] != '.' {
			return nil, fmt.Errorf("identifier %q: unexpected %q after name", s, s[i])
		}
		i++
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

// IsZero reports whether neither part is set.
func (t TableName) IsZero() bool { return t.Schema == "" && t.Name == "" }

// text is the string form: schema.table with quoting only where needed; it
// parses back to exactly t. ok is false when no string form exists (a part is
// empty while the other is not), and the object form must be used.
func (t TableName) text() (string, bool) {
	switch {
	case t.IsZero():
		return "", true
	case t.Name == "":
		return "", false
	case t.Schema == "":
		return QuoteIfNeeded(t.Name), true
	}
	return QuoteIfNeeded(t.Schema) + "." + QuoteIfNeeded(t.Name), true
}

type tableObject struct {
	Schema string `json:"schema" yaml:"schema"`
	Name   string `json:"name" yaml:"name"`
}

// MarshalJSON emits the string form ("public.orders", `"Sales"."Order"`).
func (t TableName) MarshalJSON() ([]byte, error) {
	if s, ok := t.text(); ok {
		return json.Marshal(s)
	}
	return json.Marshal(tableObject(t))
}

// UnmarshalJSON accepts the string form (bare parts folded to lower case) or
// {"schema": ..., "name": ...} whose values are taken literally.
func (t *TableName) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*t = TableName{}
			return nil
		}
		v, err := ParseTableName(s)
		if err != nil {
			return err
		}
		*t = v
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var o tableObject
	if err := dec.Decode(&o); err != nil {
		return fmt.Errorf("table name: want \"schema.table\" or {\"schema\",\"name\"}: %w", err)
	}
	*t = TableName(o)
	return nil
}

// MarshalYAML emits the string form.
func (t TableName) MarshalYAML() (any, error) {
	if s, ok := t.text(); ok {
		return s, nil
	}
	return tableObject(t), nil
}

// UnmarshalYAML accepts the string form or a {schema, name} mapping.
func (t *TableName) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			*t = TableName{}
			return nil
		}
		v, err := ParseTableName(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		*t = v
		return nil
	case yaml.MappingNode:
		var o tableObject
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: table %s must be a string", v.Line, k.Value)
			}
			switch k.Value {
			case "schema":
				o.Schema = v.Value
			case "name":
				o.Name = v.Value
			default:
				return fmt.Errorf("line %d: field %s not found in table name (want schema, name)", k.Line, k.Value)
			}
		}
		*t = TableName(o)
		return nil
	}
	return fmt.Errorf("line %d: table name must be a string or a {schema, name} mapping", n.Line)
}
