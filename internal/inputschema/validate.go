package inputschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Problem is one way an input does not fit its schema.
type Problem struct {
	// Path is the JSON Pointer of the offending value ("/approval/default",
	// "" for the whole document); for an unknown or missing key it names
	// the key itself.
	Path string `json:"path"`
	// Message says what is wrong, and for an unknown key which allowed key
	// it probably meant.
	Message string `json:"message"`
}

func (p Problem) String() string {
	path := p.Path
	if path == "" {
		path = "/"
	}
	return path + ": " + p.Message
}

// Validate checks input against schema and returns every problem, sorted by
// path; none means the input fits. A schema that does not compile is
// reported as a problem too, so callers have one thing to print.
func Validate(schema, input []byte) []Problem {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return []Problem{{Message: "schema is not JSON: " + err.Error()}}
	}
	const loc = "input.schema.json"
	c := jsonschema.NewCompiler()
	if err := c.AddResource(loc, doc); err != nil {
		return []Problem{{Message: "schema: " + err.Error()}}
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return []Problem{{Message: "schema: " + err.Error()}}
	}
	inst, err := decode(input)
	if err != nil {
		return []Problem{{Message: err.Error()}}
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Problem{{Message: err.Error()}}
	}
	v := &collector{schema: doc, printer: message.NewPrinter(language.English), seen: map[string]bool{}}
	v.walk(ve)
	sort.SliceStable(v.out, func(i, j int) bool { return v.out[i].Path < v.out[j].Path })
	return v.out
}

// decode parses the input the way the validator wants it (numbers kept
// exact), reporting a syntax error with its line and column.
func decode(input []byte) (any, error) {
	if len(bytes.TrimSpace(input)) == 0 {
		return nil, errors.New("input is empty: want a JSON object")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(input))
	if err == nil {
		return inst, nil
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(input, se.Offset)
		return nil, fmt.Errorf("not valid JSON at line %d, column %d: %v", line, col, se)
	}
	return nil, fmt.Errorf("not valid JSON: %w", err)
}

func position(b []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - (bytes.LastIndexByte(before, '\n') + 1)
	return line, max(col, 1)
}

// collector turns the validator's error tree into problems at its leaves:
// an error with causes only says that something below failed.
type collector struct {
	schema  any
	printer *message.Printer
	out     []Problem
	seen    map[string]bool
}

func (c *collector) add(p Problem) {
	if k := p.String(); !c.seen[k] {
		c.seen[k] = true
		c.out = append(c.out, p)
	}
}

func (c *collector) walk(e *jsonschema.ValidationError) {
	if len(e.Causes) > 0 {
		for _, sub := range e.Causes {
			c.walk(sub)
		}
		return
	}
	at := pointer(e.InstanceLocation)
	switch k := e.ErrorKind.(type) {
	case *kind.AdditionalProperties:
		allowed, patterns := c.propertiesAt(e.SchemaURL)
		for _, name := range k.Properties {
			msg := "additional property not allowed"
			if s := suggest(name, allowed); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			if slices.Contains(patterns, gateKeyPattern) {
				msg = fmt.Sprintf("gate key %q: want promotion, remediation, approval or investigate, optionally followed by /<environment>", name)
			}
			c.add(Problem{Path: at + "/" + escape(name), Message: msg})
		}
	case *kind.Required:
		for _, name := range k.Missing {
			c.add(Problem{Path: at + "/" + escape(name), Message: "required property is missing"})
		}
	default:
		c.add(Problem{Path: at, Message: c.message(e)})
	}
}

// message is the validator's text for a leaf error, in the product's
// words where the schema's own patterns would only show a regexp.
func (c *collector) message(e *jsonschema.ValidationError) string {
	if k, ok := e.ErrorKind.(*kind.Pattern); ok {
		switch k.Want {
		case durationPattern, optionalDurationPattern:
			return fmt.Sprintf("%q is not a duration: want a Go duration such as \"24h\", \"30m\" or \"1h30m\"", k.Got)
		case nonBlank:
			return "must not be blank"
		case targetPattern:
			return fmt.Sprintf("target %q: a target names an environment of the worker configuration, without '/' or spaces", k.Got)
		case clockPattern:
			return fmt.Sprintf("%q: want a local time HH:MM such as \"02:00\"", k.Got)
		}
	}
	return e.ErrorKind.LocalizedString(c.printer)
}

// propertiesAt lists the property names and the property patterns of the
// schema object at url (an absolute schema location whose fragment is a
// JSON Pointer into the schema document).
func (c *collector) propertiesAt(url string) (names, patterns []string) {
	_, frag, _ := strings.Cut(url, "#")
	node := c.schema
	for _, tok := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if tok == "" {
			continue
		}
		m, ok := node.(map[string]any)
		if !ok {
			return nil, nil
		}
		node = m[unescape(tok)]
	}
	m, _ := node.(map[string]any)
	props, _ := m["properties"].(map[string]any)
	for k := range props {
		names = append(names, k)
	}
	pats, _ := m["patternProperties"].(map[string]any)
	for k := range pats {
		patterns = append(patterns, k)
	}
	sort.Strings(names)
	return names, patterns
}

// suggest is the allowed key closest to name, when close enough to be a
// misspelling: at most two edits, or a third of the key for long keys.
// Case and underscores are ignored ("dryRun" means "dry_run").
func suggest(name string, allowed []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "_", "") }
	best, bestD := "", -1
	for _, a := range allowed {
		if a == "$schema" {
			continue
		}
		d := distance(norm(name), norm(a))
		if bestD < 0 || d < bestD {
			best, bestD = a, d
		}
	}
	if bestD < 0 || bestD > max(2, len(name)/3) {
		return ""
	}
	return best
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteString("/" + escape(t))
	}
	return b.String()
}

func escape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}

func unescape(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
}
