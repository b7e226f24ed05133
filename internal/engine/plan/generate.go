package plan

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const separator = "-- ============================================================"

// Generate renders p as a Prisma migration in the style teams write by
// hand (see sql/migration.sql): NOT VALID
// additions grouped under "-- Priority N: NAME" headers (critical first,
// file order within a priority), each with its comment above it, then a
// "Validation Phase" with the VALIDATE statements in the same order. The
// result parses back (ParseSQL) to p.Sorted(). relPath is
// "<YYYYMMDDHHMMSS>_<name>/migration.sql" (UTC).
func Generate(p Plan, name string, now time.Time) (relPath string, content []byte) {
	name = migrationName(name)
	var b strings.Builder
	b.WriteString("-- fkrollout migration: " + name + "\n")
	b.WriteString("-- Constraints are added NOT VALID (short lock, no scan), then validated\n")
	b.WriteString("-- (scan without blocking writes). Keep the two phases in separate transactions.\n")
	b.WriteString(directiveText(p.Lint))
	sorted := p.Sorted()
	for i, fk := range sorted {
		if i == 0 || fk.Priority != sorted[i-1].Priority {
			fmt.Fprintf(&b, "\n%s\n-- Priority %d: %s\n%s\n", separator, int(fk.Priority), fk.Priority, separator)
		}
		b.WriteString("\n")
		writeComment(&b, fk.Comment)
		b.WriteString(formatAdd(fk))
	}
	if len(sorted) > 0 {
		fmt.Fprintf(&b, "\n%s\n-- Validation Phase\n%s\n", separator, separator)
		for _, fk := range sorted {
			fmt.Fprintf(&b, "\nALTER TABLE %s\nVALIDATE CONSTRAINT %s;\n", fk.Table, QuoteIfNeeded(fk.Name))
		}
	}
	rel := filepath.ToSlash(filepath.Join(now.UTC().Format("20060102150405")+"_"+name, "migration.sql"))
	return rel, []byte(b.String())
}

// WriteMigration writes Generate's output under dir and returns its path.
// It refuses to overwrite an existing migration.
func WriteMigration(dir, name string, p Plan, now time.Time) (string, error) {
	rel, content := Generate(p, name, now)
	path := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("write migration: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("write migration: %w", err)
	}
	if _, err := f.Write(content); err != nil {
		f.Close()
		return "", fmt.Errorf("write migration %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("write migration %s: %w", path, err)
	}
	return path, nil
}

// formatAdd is the multi-line NOT VALID addition, identifiers quoted only
// where needed, the table always schema-qualified (independent of the
// search_path of whoever runs the file).
func formatAdd(fk ForeignKey) string {
	var b strings.Builder
	fmt.Fprintf(&b, "ALTER TABLE %s\nADD CONSTRAINT %s\nFOREIGN KEY (%s)\nREFERENCES %s",
		fk.Table, QuoteIfNeeded(fk.Name), strings.Join(quoteIfNeededAll(fk.Columns), ", "), fk.RefTable)
	// Without referenced columns the reference stays implicit (the primary key).
	if len(fk.RefColumns) > 0 {
		b.WriteString("(" + strings.Join(quoteIfNeededAll(fk.RefColumns), ", ") + ")")
	}
	b.WriteString("\n")
	if fk.Match != "" {
		b.WriteString("MATCH " + string(fk.Match) + "\n")
	}
	if fk.OnDelete != "" {
		b.WriteString("ON DELETE " + string(fk.OnDelete) + "\n")
	}
	if fk.OnUpdate != "" {
		b.WriteString("ON UPDATE " + string(fk.OnUpdate) + "\n")
	}
	if fk.Deferrable {
		b.WriteString("DEFERRABLE\n")
		if fk.InitiallyDeferred {
			b.WriteString("INITIALLY DEFERRED\n")
		}
	}
	b.WriteString("NOT VALID;\n")
	return b.String()
}

func writeComment(b *strings.Builder, c string) {
	c = strings.TrimSpace(strings.ReplaceAll(c, "\r", ""))
	if c == "" {
		return
	}
	for _, l := range strings.Split(c, "\n") {
		b.WriteString("-- " + strings.TrimSpace(l) + "\n")
	}
}

// migrationName keeps Prisma-style names: lower case, [a-z0-9_] only.
func migrationName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := strings.Trim(b.String(), "_")
	if out == "" {
		return "fkrollout"
	}
	return out
}
