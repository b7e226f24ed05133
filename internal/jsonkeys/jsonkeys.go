// Package jsonkeys finds the keys of a JSON document that no field of a Go
// type takes. encoding/json drops them without a word, so a misspelled key
// in a hand-written input ("dryrun" for "dry_run") would silently mean the
// default; callers report them instead.
package jsonkeys

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Key is a key no field takes: its path ("environments[0].maintenance_window.strat")
// and, when a field's name is close, that name ("start").
type Key struct {
	Path    string
	Suggest string
}

// String is the path, with the suggestion when there is one.
func (k Key) String() string {
	if k.Suggest == "" {
		return k.Path
	}
	return fmt.Sprintf("%s (did you mean %q?)", k.Path, k.Suggest)
}

// Unknown returns every key in data that decoding into a value of t's type
// would ignore, sorted by path. It follows encoding/json's rules: a key matches a field's json
// name exactly or, failing that, ignoring case; embedded structs lend their
// fields; a type with its own UnmarshalJSON is not looked into. Data that
// is not JSON gives no keys (decoding reports that itself).
func Unknown(data []byte, t reflect.Type) []Key {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil
	}
	var out []Key
	walk(doc, t, "", &out, true)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

func walk(v any, t reflect.Type, path string, out *[]Key, top bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	// The top type may be the caller's own (an UnmarshalJSON that calls
	// Unknown); below it, a custom decoder decides for itself.
	if !top && (t.Implements(unmarshaler) || reflect.PointerTo(t).Implements(unmarshaler)) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		for key, val := range obj {
			f, ok := match(fields, key)
			if !ok {
				*out = append(*out, Key{Path: join(path, key), Suggest: closest(fields, key)})
				continue
			}
			walk(val, f.typ, join(path, key), out, false)
		}
	case reflect.Slice, reflect.Array:
		arr, ok := v.([]any)
		if !ok {
			return
		}
		for i, el := range arr {
			walk(el, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out, false)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return
		}
		for key, val := range obj {
			walk(val, t.Elem(), join(path, key), out, false)
		}
	}
}

type field struct {
	name string
	typ  reflect.Type
}

// jsonFields are the names encoding/json decodes into, embedded structs'
// fields included.
func jsonFields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := sf.Type
		if sf.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				out = append(out, jsonFields(et)...)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out = append(out, field{name: name, typ: ft})
	}
	return out
}

func match(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.name == key {
			return f, true
		}
	}
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return f, true
		}
	}
	return field{}, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// closest is the field name a misspelled key most likely meant: the same
// letters but for case and underscores, or at most two edits away.
func closest(fields []field, key string) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	best, bestDist := "", 3
	for _, f := range fields {
		if norm(f.name) == norm(key) {
			return f.name
		}
		if d := distance(strings.ToLower(f.name), strings.ToLower(key)); d < bestDist {
			best, bestDist = f.name, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
