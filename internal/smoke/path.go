package smoke

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// step is one element of a JSON path: an object key or an array index.
type step struct {
	key   string
	index int
	isIdx bool
}

// parsePath reads the dotted-path subset: keys separated by dots, array
// indexes in brackets (data.items[0].id, [2].name); a leading "$." is
// allowed. Keys containing dots or brackets cannot be addressed.
func parsePath(p string) ([]step, error) {
	s := strings.TrimPrefix(strings.TrimSpace(p), "$")
	s = strings.TrimPrefix(s, ".")
	if s == "" {
		return nil, fmt.Errorf("json path %q is empty", p)
	}
	var out []step
	for _, part := range strings.Split(s, ".") {
		key, rest, bracket := strings.Cut(part, "[")
		if key == "" && !bracket {
			return nil, fmt.Errorf("json path %q has an empty key", p)
		}
		if bracket && rest == "" {
			return nil, fmt.Errorf("json path %q: [ without ]", p)
		}
		if key != "" {
			out = append(out, step{key: key})
		}
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			if !ok {
				return nil, fmt.Errorf("json path %q: [ without ]", p)
			}
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("json path %q: index %q is not a number", p, num)
			}
			out = append(out, step{index: n, isIdx: true})
			if after == "" {
				break
			}
			if !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("json path %q: unexpected %q after ]", p, after)
			}
			rest = after[1:]
		}
	}
	return out, nil
}

// lookup finds the value at path in a decoded JSON document.
func lookup(doc any, path []step) (any, bool) {
	cur := doc
	for _, s := range path {
		switch v := cur.(type) {
		case map[string]any:
			if s.isIdx {
				return nil, false
			}
			next, ok := v[s.key]
			if !ok {
				return nil, false
			}
			cur = next
		case []any:
			if !s.isIdx || s.index >= len(v) {
				return nil, false
			}
			cur = v[s.index]
		default:
			return nil, false
		}
	}
	return cur, true
}

// decodeJSON decodes a body keeping numbers as written (42, not 42.0).
func decodeJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// valueText is how a JSON value compares with equals and regex: strings
// without quotes, numbers as written, true/false/null, objects and arrays
// as compact JSON.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// varRef matches ${name}.
var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// refs lists the variable names s uses.
func refs(s string) []string {
	var out []string
	for _, m := range varRef.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// expand replaces each ${name} with escape(value); ok is false (and
// missing names the first unknown variable) when one has no value.
func expand(s string, vars map[string]string, escape func(string) string) (out, missing string) {
	out = varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := vars[name]
		if !ok {
			if missing == "" {
				missing = name
			}
			return m
		}
		if escape != nil {
			return escape(v)
		}
		return v
	})
	return out, missing
}

// validName: a capture name usable as ${name}.
var validName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
