package sqlplan

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Parse reads plan text in the given format: the single entry point every
// caller shares, so that (*plan.Source).Lint sees the same facts whatever the
// source. Empty and comment-only texts and texts without a foreign key are
// refused (errors.Is plan.ErrEmptyPlan / plan.ErrNoForeignKeys).
func Parse(text string, format plan.Format) (*plan.Source, error) {
	switch format {
	case plan.FormatSQL:
		return parseSQL(text)
	case plan.FormatYAML, plan.FormatJSON:
		p, err := plan.ParseYAML([]byte(text))
		if err != nil {
			return nil, err
		}
		return &plan.Source{Format: format, Plan: p}, nil
	}
	return nil, fmt.Errorf("parse plan: unknown format %q (want sql, yaml or json)", format)
}

// Load reads a plan file, its format chosen by extension (plan.FormatForPath).
// A plan without a name is named after the file (for Prisma's
// <ts>_<name>/migration.sql, the <name> part).
func Load(path string) (plan.Plan, error) {
	src, err := LoadSource(path)
	if err != nil {
		return plan.Plan{}, err
	}
	return src.Plan, nil
}

// LoadSource is Load keeping the statement facts, for plan.Source.Lint.
func LoadSource(path string) (*plan.Source, error) {
	format, err := plan.FormatForPath(path)
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
// plan.ErrEmptyPlan.
func ParseAuto(text string) (plan.Plan, error) {
	src, err := ParseAutoSource(text)
	if err != nil {
		return plan.Plan{}, err
	}
	return src.Plan, nil
}

// ParseAutoSource is ParseAuto keeping the statement facts.
func ParseAutoSource(text string) (*plan.Source, error) {
	if plan.IsBlank(text) {
		return nil, plan.ErrEmptyPlan
	}
	return Parse(text, plan.DetectFormat(text))
}

// LintSQL reviews a migration file with default options; a file that does
// not parse (or holds no foreign key) is one parse-error finding.
func LintSQL(sql string) []plan.Finding {
	src, err := Parse(sql, plan.FormatSQL)
	if err != nil {
		return []plan.Finding{{Severity: plan.SeverityError, Rule: plan.RuleParseError, Message: err.Error()}}
	}
	return src.Lint(plan.LintOptions{})
}
