package plan

import (
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

// Load reads a plan file chosen by extension: .sql is a migration
// (ParseSQL), .yaml/.yml/.json a plan file (ParseYAML). A plan without a
// name is named after the file (for Prisma's <ts>_<name>/migration.sql, the
// <name> part).
func Load(path string) (Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Plan{}, fmt.Errorf("load plan: %w", err)
	}
	var p Plan
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".sql":
		p, err = ParseSQL(string(data))
	case ".yaml", ".yml", ".json":
		p, err = ParseYAML(data)
	default:
		return Plan{}, fmt.Errorf("load plan %s: unknown extension %q (want .sql, .yaml, .yml or .json)", path, ext)
	}
	if err != nil {
		return Plan{}, fmt.Errorf("load plan %s: %w", path, err)
	}
	if p.Name == "" {
		p.Name = nameFromPath(path)
	}
	return p, nil
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
// is SQL; anything else (a YAML mapping or a JSON object) goes to ParseYAML.
func ParseAuto(text string) (Plan, error) {
	if looksLikeSQL(text) {
		return ParseSQL(text)
	}
	return ParseYAML([]byte(text))
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
	end := 0
	for end < len(s) && (s[end] >= 'a' && s[end] <= 'z' || s[end] >= 'A' && s[end] <= 'Z' || s[end] == '_') {
		end++
	}
	word := strings.ToUpper(s[:end])
	switch word {
	case "ALTER", "BEGIN", "START", "COMMIT", "END", "SET", "CREATE", "DROP", "UPDATE", "DELETE", "INSERT", "WITH", "SELECT", "DO":
		// "name: x" (YAML) starts with a word too; SQL keywords never end in ':'.
		rest := strings.TrimLeft(s[len(word):], " \t")
		return !strings.HasPrefix(rest, ":")
	}
	return false
}
