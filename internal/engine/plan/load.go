package plan

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Sorted returns a copy of the foreign keys stable-sorted by priority
// (critical first); within a priority the original order is kept.
func (p Plan) Sorted() []ForeignKey {
	out := append([]ForeignKey(nil), p.ForeignKeys...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return out
}

// Format is the syntax of a plan text.
type Format string

const (
	// FormatSQL is a migration file: PostgreSQL DDL.
	FormatSQL Format = "sql"
	// FormatYAML is a plan file in YAML.
	FormatYAML Format = "yaml"
	// FormatJSON is a plan file in JSON (read as YAML, which includes JSON).
	FormatJSON Format = "json"
)

// FormatForPath chooses the format by extension: .sql, .yaml/.yml, .json.
func FormatForPath(path string) (Format, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".sql":
		return FormatSQL, nil
	case ".yaml", ".yml":
		return FormatYAML, nil
	case ".json":
		return FormatJSON, nil
	default:
		return "", fmt.Errorf("unknown plan file extension %q (want .sql, .yaml, .yml or .json)", ext)
	}
}

// ErrEmptyPlan: the text holds nothing but whitespace and comments.
var ErrEmptyPlan = errors.New("plan is empty: no statements (only comments/whitespace)")

// ErrNoForeignKeys: the text parses but adds no foreign key.
var ErrNoForeignKeys = errors.New("plan has no foreign keys")

// Parse reads plan text in the given format: the single entry point every
// caller shares, so that (*Source).Lint sees the same facts whatever the
// source. Empty and comment-only texts and texts without a foreign key are
// refused (errors.Is ErrEmptyPlan / ErrNoForeignKeys).
func Parse(text string, format Format) (*Source, error) {
	switch format {
	case FormatSQL:
		return parseSQL(text)
	case FormatYAML, FormatJSON:
		p, err := parsePlanFile([]byte(text))
		if err != nil {
			return nil, err
		}
		return &Source{Format: format, Plan: p}, nil
	}
	return nil, fmt.Errorf("parse plan: unknown format %q (want sql, yaml or json)", format)
}

// Load reads a plan file, its format chosen by extension (FormatForPath).
// A plan without a name is named after the file (for Prisma's
// <ts>_<name>/migration.sql, the <name> part).
func Load(path string) (Plan, error) {
	src, err := LoadSource(path)
	if err != nil {
		return Plan{}, err
	}
	return src.Plan, nil
}

// LoadSource is Load keeping the statement facts, for Source.Lint.
func LoadSource(path string) (*Source, error) {
	format, err := FormatForPath(path)
	if err != nil {
		return nil, fmt.Errorf("load plan %s: %w", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load plan: %w", err)
	}
	src, err := Parse(string(data), format)
	if err != nil {
		return nil, fmt.Errorf("load plan %s: %w", path, err)
	}
	if src.Plan.Name == "" {
		src.Plan.Name = nameFromPath(path)
	}
	return src, nil
}

var prismaDir = regexp.MustCompile(`^[0-9]{14}_(.+)$`)

func nameFromPath(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if base == "migration" {
		if m := prismaDir.FindStringSubmatch(filepath.Base(filepath.Dir(path))); m != nil {
			return m[1]
		}
	}
	return base
}

// ParseAuto parses plan text whose format is not known (workflow inputs
// carry the plan inline): text whose first SQL token is a statement keyword
// (or a psql meta-command) is SQL; anything else (a YAML mapping or a JSON
// object) is a plan file. Text with nothing but whitespace and comments is
// ErrEmptyPlan.
func ParseAuto(text string) (Plan, error) {
	src, err := ParseAutoSource(text)
	if err != nil {
		return Plan{}, err
	}
	return src.Plan, nil
}

// ParseAutoSource is ParseAuto keeping the statement facts.
func ParseAutoSource(text string) (*Source, error) {
	if isBlank(text) {
		return nil, ErrEmptyPlan
	}
	return Parse(text, DetectFormat(text))
}

// DetectFormat guesses the format of plan text: FormatSQL when its first
// token is a SQL statement keyword or a psql meta-command, FormatJSON for an
// object, else FormatYAML.
func DetectFormat(text string) Format {
	switch {
	case looksLikeSQL(text):
		return FormatSQL
	case strings.HasPrefix(strings.TrimSpace(text), "{"):
		return FormatJSON
	}
	return FormatYAML
}

// isBlank reports text made only of whitespace and comments of either
// format: SQL "--" and "/* */", YAML "#".
func isBlank(text string) bool {
	s := text
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v\uFEFF")
		switch {
		case s == "":
			return true
		case strings.HasPrefix(s, "--"), strings.HasPrefix(s, "#"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return true
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return false
			}
			s = s[i+2:]
		default:
			return false
		}
	}
}

func looksLikeSQL(text string) bool {
	s := text
	for {
		s = strings.TrimLeft(s, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return false
			}
			s = s[i+1:]
			continue
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s, "*/")
			if i < 0 {
				return false
			}
			s = s[i+2:]
			continue
		}
		break
	}
	if strings.HasPrefix(s, `\`) {
		return true // psql meta-command (pg_dump's \restrict)
	}
	end := 0
	for end < len(s) && (s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] == '_') {
		end++
	}
	word := strings.ToUpper(s[:end])
	switch word {
	case "ALTER", "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SET", "RESET", "CREATE", "DROP", "UPDATE", "DELETE",
		"INSERT", "WITH", "SELECT", "DO", "COMMENT", "GRANT", "REVOKE", "COPY", "TRUNCATE", "LOCK", "SAVEPOINT", "RELEASE":
		// "name: x" (YAML) starts with a word too; SQL keywords never end in ':'.
		rest := strings.TrimLeft(s[len(word):], " \t")
		return !strings.HasPrefix(rest, ":")
	}
	return false
}
