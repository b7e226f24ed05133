package inputschema

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/doc"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

var update = flag.Bool("update", false, "rewrite docs/*.schema.json and descriptions.go from the Go types and their comments")

const (
	module      = "github.com/fkrollout/fkrollout"
	repoRoot    = "../.."
	examplePath = repoRoot + "/workflows/testdata/example-input.json"
)

type schemaFile struct {
	root      reflect.Type
	id, title string
	path      string
	generated func() ([]byte, error)
}

func schemaFiles() []schemaFile {
	return []schemaFile{
		{reflect.TypeFor[rollout.Input](), RolloutID, "FKRollout input", repoRoot + "/docs/input.schema.json", RolloutSchema},
		{reflect.TypeFor[fleet.Input](), FleetID, "FKFleetRollout input", repoRoot + "/docs/fleet-input.schema.json", FleetSchema},
	}
}

// TestSchemaFilesUpToDate regenerates the published schemas (and the
// descriptions the binary carries) from the Go types and their doc
// comments, and fails when the checked-in files differ.
func TestSchemaFilesUpToDate(t *testing.T) {
	comments := sourceComments(t)
	used := map[string]bool{}
	want := map[string][]byte{}
	for _, f := range schemaFiles() {
		b, err := generate(f.root, f.id, f.title, comments, used)
		require.NoError(t, err)
		want[f.path] = b
	}
	want["descriptions.go"] = descriptionsSource(t, comments, used)
	if *update {
		for path, b := range want {
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}
	}
	for path, b := range want {
		got, err := os.ReadFile(path)
		require.NoError(t, err, "regenerate with: go test ./internal/inputschema -update")
		if !bytes.Equal(got, b) {
			t.Errorf("%s is out of date with the Go input types; regenerate with: go test ./internal/inputschema -update", path)
		}
	}
	if *update {
		return // descriptions.go takes effect at the next build
	}
	// What the binary serves (descriptions from descriptions.go) is what
	// is published.
	for _, f := range schemaFiles() {
		b, err := f.generated()
		require.NoError(t, err)
		assert.Equal(t, string(want[f.path]), string(b), "%s differs from what the package generates; regenerate with: go test ./internal/inputschema -update", f.path)
	}
}

// TestSchemaShape pins what the reflection alone would get wrong.
func TestSchemaShape(t *testing.T) {
	b, err := RolloutSchema()
	require.NoError(t, err)
	s := string(b)
	assert.Contains(t, s, `"$schema": "https://json-schema.org/draft/2020-12/schema"`)
	assert.Contains(t, s, `"required": [
    "plan",
    "requester",
    "environments"
  ]`)
	assert.NotContains(t, s, `"additionalProperties": true`)
	assert.Equal(t, strings.Count(s, `"type": "object"`), strings.Count(s, `"additionalProperties": false`),
		"every object is closed")
	assert.Contains(t, s, "Plan is the plan text", "descriptions come from the doc comments")
}

func TestValidate(t *testing.T) {
	example, err := os.ReadFile(examplePath)
	require.NoError(t, err)
	rs, err := RolloutSchema()
	require.NoError(t, err)
	fs, err := FleetSchema()
	require.NoError(t, err)
	edit := func(f func(m map[string]any)) []byte { return editJSON(t, example, f) }
	fleetOK := []byte(`{"plan":"ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES c(id) NOT VALID;","requester":"rita@example.com","targets":["tenant_a","tenant_b"],"canary":1,"monitor":{"enabled":false}}`)

	cases := []struct {
		name   string
		schema []byte
		input  []byte
		want   []string // problem strings, in order
	}{
		{"example input", rs, example, nil},
		{"misspelled keys", rs, edit(func(m map[string]any) {
			delete(m, "dry_run")
			m["dryrun"] = true
			m["aproval"] = map[string]any{}
		}), []string{
			`/aproval: additional property not allowed (did you mean "approval"?)`,
			`/dryrun: additional property not allowed (did you mean "dry_run"?)`,
		}},
		{"$schema is allowed", rs, edit(func(m map[string]any) { m["$schema"] = "./docs/input.schema.json" }), nil},
		{"nested unknown key", rs, edit(func(m map[string]any) {
			m["environments"].([]any)[1].(map[string]any)["maintenance_window"].(map[string]any)["timezon"] = "UTC"
		}), []string{`/environments/1/maintenance_window/timezon: additional property not allowed (did you mean "timezone"?)`}},
		{"unknown key far from any", rs, edit(func(m map[string]any) { m["colour"] = "blue" }), []string{`/colour: additional property not allowed`}},
		{"missing required", rs, edit(func(m map[string]any) { delete(m, "requester"); delete(m, "plan") }), []string{
			`/plan: required property is missing`, `/requester: required property is missing`,
		}},
		{"blank requester", rs, edit(func(m map[string]any) { m["requester"] = "  " }), []string{`/requester: must not be blank`}},
		{"no environments", rs, edit(func(m map[string]any) { m["environments"] = []any{} }), []string{`/environments: minItems: got 0, want 1`}},
		{"bad duration", rs, edit(func(m map[string]any) { m["monitor"].(map[string]any)["duration"] = "1 day" }), []string{
			`/monitor/duration: "1 day" is not a duration: want a Go duration such as "24h", "30m" or "1h30m"`,
		}},
		{"wrong type", rs, edit(func(m map[string]any) { m["dry_run"] = "yes" }), []string{`/dry_run: got string, want boolean`}},
		{"unknown gate kind", rs, edit(func(m map[string]any) {
			m["approval"].(map[string]any)["gates"].(map[string]any)["promotoin/production"] = map[string]any{}
		}), []string{`/approval/gates/promotoin~1production: gate key "promotoin/production": want promotion, remediation, approval or investigate, optionally followed by /<environment>`}},
		{"plan format", rs, edit(func(m map[string]any) { m["plan_format"] = "toml" }), []string{`/plan_format: value must be one of '', 'sql', 'yaml', 'json'`}},
		{"not an object", rs, []byte(`[]`), []string{`/: got array, want object`}},
		{"not JSON", rs, []byte("{\n  \"plan\": \"x\",\n}"), []string{`/: not valid JSON at line 3, column 1: invalid character '}' looking for beginning of object key string`}},
		{"empty", rs, []byte(" \n"), []string{`/: input is empty: want a JSON object`}},
		{"fleet input", fs, fleetOK, nil},
		{"fleet input against the rollout schema", rs, fleetOK, []string{
			`/canary: additional property not allowed`, `/environments: required property is missing`,
			`/targets: additional property not allowed`,
		}},
		{"fleet misspelled", fs, bytes.Replace(fleetOK, []byte(`"canary"`), []byte(`"canery"`), 1), []string{
			`/canery: additional property not allowed (did you mean "canary"?)`,
		}},
		{"fleet target with a slash", fs, bytes.Replace(fleetOK, []byte(`"tenant_b"`), []byte(`"tenant/b"`), 1), []string{
			`/targets/1: target "tenant/b": a target names an environment of the worker configuration, without '/' or spaces`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, p := range Validate(c.schema, c.input) {
				got = append(got, p.String())
			}
			assert.Equal(t, c.want, got)
		})
	}
}

func TestSuggest(t *testing.T) {
	allowed := []string{"$schema", "approval", "dry_run", "environments", "plan", "plan_format", "requester"}
	cases := map[string]string{
		"aproval": "approval", "dryrun": "dry_run", "DryRun": "dry_run", "enviroments": "environments",
		"requestor": "requester", "planformat": "plan_format", "colour": "", "schema": "", "x": "",
	}
	for in, want := range cases {
		assert.Equal(t, want, suggest(in, allowed), in)
	}
}

func editJSON(t *testing.T, b []byte, f func(map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	f(m)
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

// sourceComments reads the doc comments of every type the inputs reach,
// keyed as the reflector looks them up.
func sourceComments(t *testing.T) map[string]string {
	t.Helper()
	pkgs := map[string]bool{}
	for _, f := range schemaFiles() {
		packagesOf(f.root, pkgs, map[reflect.Type]bool{})
	}
	out := map[string]string{}
	for pkg := range pkgs {
		dir := filepath.Join(repoRoot, strings.TrimPrefix(pkg, module+"/"))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		fset := token.NewFileSet()
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
			require.NoError(t, err)
			fileComments(pkg, file, out)
		}
	}
	return out
}

func packagesOf(t reflect.Type, pkgs map[string]bool, seen map[reflect.Type]bool) {
	if seen[t] {
		return
	}
	seen[t] = true
	if strings.HasPrefix(t.PkgPath(), module+"/") {
		pkgs[t.PkgPath()] = true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		packagesOf(t.Elem(), pkgs, seen)
	case reflect.Map:
		packagesOf(t.Elem(), pkgs, seen)
	case reflect.Struct:
		for i := range t.NumField() {
			packagesOf(t.Field(i).Type, pkgs, seen)
		}
	}
}

// fileComments: a type's description is its doc's first sentence, a
// field's is its whole doc on one line.
func fileComments(pkg string, f *ast.File, out map[string]string) {
	var synopsis doc.Package
	oneLine := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.TYPE {
			continue
		}
		for _, spec := range gd.Specs {
			ts := spec.(*ast.TypeSpec)
			if !ts.Name.IsExported() {
				continue
			}
			text := ts.Doc.Text()
			if text == "" && len(gd.Specs) == 1 {
				text = gd.Doc.Text()
			}
			if text != "" {
				out[pkg+"."+ts.Name.Name] = oneLine(synopsis.Synopsis(text))
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, field := range st.Fields.List {
				text := field.Doc.Text()
				if text == "" {
					text = field.Comment.Text()
				}
				for _, n := range field.Names {
					if n.IsExported() && text != "" {
						out[pkg+"."+ts.Name.Name+"."+n.Name] = oneLine(text)
					}
				}
			}
		}
	}
}

func descriptionsSource(t *testing.T, comments map[string]string, used map[string]bool) []byte {
	t.Helper()
	keys := make([]string, 0, len(used))
	for k := range used {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(`// Code generated by "go test ./internal/inputschema -update"; DO NOT EDIT.

package inputschema

// descriptions are the doc comments of the input types, keyed
// "<pkgpath>.<Type>[.<Field>]": the binary has no sources to read them from.
func descriptions() map[string]string {
	return map[string]string{
`)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s,\n", strconv.Quote(k), strconv.Quote(comments[k]))
	}
	b.WriteString("}\n}\n")
	src, err := format.Source([]byte(b.String()))
	require.NoError(t, err)
	return src
}
