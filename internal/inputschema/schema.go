// Package inputschema publishes the JSON Schema (draft 2020-12) of the
// inputs release owners paste into the Temporal UI, FKRollout's
// (rollout.Input) and FKFleetRollout's (fleet.Input), and validates an
// input against it so misspelled keys are errors instead of being ignored.
//
// The schemas are reflected from the Go types, so they cannot drift from
// what the workflows decode; what the reflection cannot know (which
// fields the workflow requires, which strings are durations or choices)
// is stated here, next to the workflow checks it mirrors.
package inputschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// Schema ids. They name the files in docs/ and are what "$ref"s in the
// schema resolve against; nothing fetches them.
const (
	RolloutID = "https://github.com/fkrollout/fkrollout/docs/input.schema.json"
	FleetID   = "https://github.com/fkrollout/fkrollout/docs/fleet-input.schema.json"
)

// Go duration strings ("24h", "1h30m", "0s"), as time.ParseDuration reads
// them without a sign; the workflow checks the ranges.
const (
	durationPattern         = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`
	optionalDurationPattern = `^$|` + durationPattern
	// nonBlank: the workflow trims spaces before it checks for empty.
	nonBlank = `\S`
	// gateKeyPattern: a gate kind, optionally "/<environment>".
	gateKeyPattern = `^(promotion|remediation|approval|investigate)(/.+)?$`
	// targetPattern: a fleet target names an environment, no '/' or spaces.
	targetPattern = `^[^/\s]+$`
	// clockPattern: a maintenance window's "HH:MM".
	clockPattern = `^([01]?[0-9]|2[0-3]):[0-5]?[0-9]$`
)

// RolloutSchema is the schema of FKRollout's input (docs/input.schema.json).
func RolloutSchema() ([]byte, error) {
	return generate(reflect.TypeFor[rollout.Input](), RolloutID, "FKRollout input", descriptions(), nil)
}

// FleetSchema is the schema of FKFleetRollout's input
// (docs/fleet-input.schema.json).
func FleetSchema() ([]byte, error) {
	return generate(reflect.TypeFor[fleet.Input](), FleetID, "FKFleetRollout input", descriptions(), nil)
}

// rule is what the Go type does not say about one object: the fields the
// workflow requires and constraints on some properties.
type rule struct {
	required []string
	props    map[string]func(*jsonschema.Schema)
}

// rules by definition name (the root is "Input"). Required lists mirror
// the workflows' own checks (rollout's validateInput, fleet's Validate,
// monitor.ValidateRules, the requester proof's verification); every other
// field may be left out.
func rules(root reflect.Type) map[string]rule {
	// The safeguards an input (a rollout's or a fleet's) may name; the
	// worker's policy decides whether it may turn each off.
	skip := func(s *jsonschema.Schema) {
		enum(policy.Safeguards...)(s.Items)
		s.UniqueItems = true
	}
	root0 := rule{required: []string{"plan", "requester", "environments"}, props: map[string]func(*jsonschema.Schema){
		"plan":         pattern(nonBlank, "must not be blank"),
		"plan_format":  enum("", "sql", "yaml", "json"),
		"requester":    pattern(nonBlank, "must not be blank"),
		"environments": minItems(1),
		"skip":         skip,
	}}
	if root == reflect.TypeFor[fleet.Input]() {
		root0 = rule{required: []string{"plan", "requester", "targets"}, props: map[string]func(*jsonschema.Schema){
			"plan":        pattern(nonBlank, "must not be blank"),
			"plan_format": enum("", "sql", "yaml", "json"),
			"requester":   pattern(nonBlank, "must not be blank"),
			"targets": func(s *jsonschema.Schema) {
				minItems(1)(s)
				maxItems(fleet.MaxTargets)(s)
				s.Items.Pattern = targetPattern
			},
			"skip": skip,
		}}
	}
	return map[string]rule{
		"Input": root0,
		"EnvironmentInput": {required: []string{"name"}, props: map[string]func(*jsonschema.Schema){
			"name": pattern(nonBlank, ""),
		}},
		"MaintenanceWindow": {required: []string{"start", "duration"}, props: map[string]func(*jsonschema.Schema){
			"start":         pattern(clockPattern, `local opening time "HH:MM"`),
			"duration":      pattern(durationPattern, ""),
			"notify_before": pattern(optionalDurationPattern, ""),
		}},
		"Policy": {props: map[string]func(*jsonschema.Schema){
			// Keys by pattern rather than propertyNames: the validator
			// locates a propertyNames error unreliably.
			"gates": func(s *jsonschema.Schema) {
				s.PatternProperties = map[string]*jsonschema.Schema{gateKeyPattern: s.AdditionalProperties}
				s.AdditionalProperties = jsonschema.FalseSchema
			},
		}},
		"GateRule": {props: map[string]func(*jsonschema.Schema){
			"timeout": pattern(optionalDurationPattern, ""),
		}},
		"Thresholds": {},
		"MonitorInput": {props: map[string]func(*jsonschema.Schema){
			"duration":        pattern(optionalDurationPattern, ""),
			"interval":        pattern(optionalDurationPattern, ""),
			"baseline_period": pattern(optionalDurationPattern, ""),
		}},
		"Rule": {required: []string{"name", "metric", "op", "action"}, props: map[string]func(*jsonschema.Schema){
			"op":     enum(">", ">=", "<", "<="),
			"basis":  enum(string(monitor.BasisAbsolute), string(monitor.BasisBaseline)),
			"action": enum(string(monitor.ActionContinue), string(monitor.ActionInvestigate), string(monitor.ActionRollback)),
		}},
		"PerfInput": {props: map[string]func(*jsonschema.Schema){
			"duration": pattern(optionalDurationPattern, ""),
			"warmup":   pattern(optionalDurationPattern, ""),
			"metric":   enum("", "avg", "p50", "p95", "p99"),
		}},
		"Proof":      {required: []string{"key_id", "nonce", "signed_at", "signature"}},
		"FleetScope": {required: []string{"targets"}},
	}
}

func pattern(p, what string) func(*jsonschema.Schema) {
	return func(s *jsonschema.Schema) {
		s.Pattern = p
		if what != "" && !strings.Contains(s.Description, what) {
			s.Description = strings.TrimSpace(s.Description + " (" + what + ")")
		}
	}
}

func enum(values ...string) func(*jsonschema.Schema) {
	return func(s *jsonschema.Schema) {
		s.Enum = make([]any, len(values))
		for i, v := range values {
			s.Enum[i] = v
		}
	}
}

func minItems(n uint64) func(*jsonschema.Schema) {
	return func(s *jsonschema.Schema) { s.MinItems = &n }
}

func maxItems(n uint64) func(*jsonschema.Schema) {
	return func(s *jsonschema.Schema) { s.MaxItems = &n }
}

// generate reflects root into an indented schema document. comments map
// "<pkgpath>.<Type>" and "<pkgpath>.<Type>.<Field>" to the doc comments
// that become descriptions; used, when not nil, records the keys taken.
func generate(root reflect.Type, id, title string, comments map[string]string, used map[string]bool) ([]byte, error) {
	s, err := reflectSchema(root, id, title, comments, used)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode schema of %s: %w", root, err)
	}
	return buf.Bytes(), nil
}

// reflectSchema reflects root and applies its rules.
func reflectSchema(root reflect.Type, id, title string, comments map[string]string, used map[string]bool) (*jsonschema.Schema, error) {
	r := &jsonschema.Reflector{
		ExpandedStruct: true,
		// Every struct is closed: a key the workflow would ignore is an error.
		AllowAdditionalProperties: false,
		LookupComment: func(t reflect.Type, field string) string {
			k := t.PkgPath() + "." + t.Name()
			if field != "" {
				k += "." + field
			}
			c, ok := comments[k]
			if ok && used != nil {
				used[k] = true
			}
			return c
		},
		Mapper: func(t reflect.Type) *jsonschema.Schema {
			if t == reflect.TypeFor[monitor.Duration]() {
				return &jsonschema.Schema{Type: "string", Pattern: optionalDurationPattern}
			}
			return nil
		},
	}
	s := r.ReflectFromType(root)
	s.ID = jsonschema.ID(id)
	s.Title = title
	// Editors find the schema through "$schema" in the document; the
	// workflow ignores that key, so the schema allows it.
	s.Properties.Set("$schema", &jsonschema.Schema{Type: "string", Description: "Schema of this document, for editors; the workflow ignores it."})
	s.Properties.MoveToFront("$schema")

	rs := rules(root)
	objects := map[string]*jsonschema.Schema{"Input": s}
	for name, d := range s.Definitions {
		objects[name] = d
	}
	for name, d := range objects {
		if d.Type != "object" || d.Properties == nil {
			continue
		}
		ru, ok := rs[name]
		if !ok {
			return nil, fmt.Errorf("schema of %s: object %s has no rule (say which of its fields the workflow requires)", root, name)
		}
		d.Required = ru.required
		for p, f := range ru.props {
			ps, ok := d.Properties.Get(p)
			if !ok {
				return nil, fmt.Errorf("schema of %s: %s has no property %q", root, name, p)
			}
			f(ps)
		}
		for _, p := range ru.required {
			if _, ok := d.Properties.Get(p); !ok {
				return nil, fmt.Errorf("schema of %s: %s requires %q, which it does not have", root, name, p)
			}
		}
	}
	return s, nil
}
