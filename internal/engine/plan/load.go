package plan

import (
	"errors"
	"fmt"
	"path/filepath"
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

// IsBlank reports text made only of whitespace and comments of either
// format: SQL "--" and "/* */", YAML "#".
func IsBlank(text string) bool {
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
