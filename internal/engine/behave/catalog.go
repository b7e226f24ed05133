package behave

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/jackc/pgx/v5"
)

// column is what row synthesis needs to know about one column.
type column struct {
	Name       string
	Type       string // format_type: safe to splice into SQL as a cast target
	BaseType   string // typname of the type, or of a domain's base type
	TypType    string // b, e, d (resolved to base), c, r, m, p
	Category   string // typcategory of the base type (A = array)
	Typmod     int32  // of the base type
	NotNull    bool
	HasDefault bool
	Default    string // pg_get_expr of the default, "" when none
	Identity   string // "", "a" (ALWAYS) or "d" (BY DEFAULT)
	Generated  bool   // GENERATED ALWAYS AS (...) STORED: cannot be inserted
	EnumLabels []string
}

// usesSequence reports whether letting the column default would call
// nextval: such columns get explicit values so a rolled-back test leaves
// no gap in the sequence.
func (c column) usesSequence() bool {
	return c.Identity != "" || strings.Contains(c.Default, "nextval(")
}

// catalogFK is a foreign key that already exists on a table; synthesis
// follows them to create the parent rows a synthesized row needs.
type catalogFK struct {
	Name       string
	Columns    []string
	RefTable   plan.TableName
	RefColumns []string
}

type tableInfo struct {
	Name    plan.TableName
	Columns []column
	byName  map[string]int
	PK      []string
	FKs     []catalogFK
	// Allowed maps a column to the values simple CHECK constraints list for
	// it (col IN (...), col = ANY (ARRAY[...]), col = 'x').
	Allowed map[string][]string
	// Routes lead a row of a partitioned table into a leaf partition, best
	// first (partition.go); PartCols are the columns some level of the
	// partitioning is keyed on. Both empty for a plain table.
	Routes   []route
	PartCols map[string]bool
}

func (t *tableInfo) col(name string) (column, bool) {
	i, ok := t.byName[name]
	if !ok {
		return column{}, false
	}
	return t.Columns[i], true
}

// errNoTable marks plan input naming a table that is not there.
var errNoTable = errors.New("table does not exist")

const columnsSQL = `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       a.atthasdef, coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated <> '',
       bt.typname, bt.typtype::text, bt.typcategory::text,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
       coalesce(array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = bt.oid ORDER BY e.enumsortorder), '{}')
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`

// fksSQL skips the copies PostgreSQL makes of a foreign key that references
// a partitioned table (one per referenced partition, conparentid set):
// following those would insert parents straight into a partition.
const fksSQL = `
SELECT k.conname,
       array(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(n, o) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.o),
       rn.nspname, rc.relname,
       array(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(n, o) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.o)
FROM pg_constraint k
JOIN pg_class rc ON rc.oid = k.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE k.conrelid = $1 AND k.contype = 'f' AND k.conparentid = 0
ORDER BY k.conname`

func loadTable(ctx context.Context, tx pgx.Tx, name plan.TableName) (*tableInfo, error) {
	var oid uint32
	var partitioned bool
	err := tx.QueryRow(ctx, `SELECT c.oid, c.relkind = 'p' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, name.Schema, name.Name).Scan(&oid, &partitioned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", name, errNoTable)
	}
	if err != nil {
		return nil, fmt.Errorf("look up table %s: %w", name, err)
	}
	t := &tableInfo{Name: name, byName: map[string]int{}, Allowed: map[string][]string{}}

	rows, err := tx.Query(ctx, columnsSQL, oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &c.HasDefault, &c.Default, &c.Identity, &c.Generated,
			&c.BaseType, &c.TypType, &c.Category, &c.Typmod, &c.EnumLabels); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read columns of %s: %w", name, err)
		}
		t.byName[c.Name] = len(t.Columns)
		t.Columns = append(t.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", name, err)
	}

	err = tx.QueryRow(ctx, `SELECT coalesce((SELECT array(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(n, o)
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.n ORDER BY u.o)
		FROM pg_index i WHERE i.indrelid = $1 AND i.indisprimary), '{}')`, oid).Scan(&t.PK)
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s: %w", name, err)
	}

	rows, err = tx.Query(ctx, fksSQL, oid)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys of %s: %w", name, err)
	}
	for rows.Next() {
		var fk catalogFK
		if err := rows.Scan(&fk.Name, &fk.Columns, &fk.RefTable.Schema, &fk.RefTable.Name, &fk.RefColumns); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read foreign keys of %s: %w", name, err)
		}
		t.FKs = append(t.FKs, fk)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read foreign keys of %s: %w", name, err)
	}

	rows, err = tx.Query(ctx, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1 AND contype = 'c' ORDER BY conname`, oid)
	if err != nil {
		return nil, fmt.Errorf("read CHECK constraints of %s: %w", name, err)
	}
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read CHECK constraints of %s: %w", name, err)
		}
		for col, vals := range parseAllowed(def) {
			if _, ok := t.byName[col]; ok && len(t.Allowed[col]) == 0 {
				t.Allowed[col] = vals
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read CHECK constraints of %s: %w", name, err)
	}
	if partitioned {
		if err := loadRoutes(ctx, tx, t, oid); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// The shapes pg_get_constraintdef prints for "col IN (...)" and "col = x":
//
//	(status = ANY (ARRAY['A'::text, 'B'::text]))
//	((status)::text = ANY ((ARRAY['A'::character varying, 'B'::character varying])::text[]))
//	("Kind" = 'x'::text)
var (
	identRe   = `("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`
	castRe    = `(?:::[A-Za-z_][A-Za-z0-9_ ."]*(?:\[\])?)?`
	anyRe     = regexp.MustCompile(`\(*` + identRe + `\)*` + castRe + `\s*=\s*ANY\s*\(+ARRAY\[([^\]]*)\]`)
	eqRe      = regexp.MustCompile(`\(*` + identRe + `\)*` + castRe + `\s*=\s*('(?:[^']|'')*'|-?[0-9]+(?:\.[0-9]+)?)`)
	literalRe = regexp.MustCompile(`'((?:[^']|'')*)'|(-?[0-9]+(?:\.[0-9]+)?)`)
)

// parseAllowed extracts per-column value lists from a CHECK definition. It
// is deliberately simple: a wrong guess costs one retry, then the case is
// reported skipped.
func parseAllowed(def string) map[string][]string {
	out := map[string][]string{}
	add := func(re *regexp.Regexp, list func(string) []string) {
		for _, m := range re.FindAllStringSubmatchIndex(def, -1) {
			start := m[0]
			// "length(code) = 37" names code as an argument, not as the
			// compared value: skip matches whose parentheses open a call.
			if start > 0 && isWordByte(def[start-1]) {
				continue
			}
			col := def[m[2]:m[3]]
			if strings.HasPrefix(col, `"`) {
				col = strings.ReplaceAll(col[1:len(col)-1], `""`, `"`)
			} else if isKeyword(col) {
				continue
			}
			if vals := list(def[m[4]:m[5]]); len(vals) > 0 && len(out[col]) == 0 {
				out[col] = vals
			}
		}
	}
	lits := func(s string) []string {
		var vals []string
		for _, l := range literalRe.FindAllStringSubmatch(s, -1) {
			if l[2] != "" {
				vals = append(vals, l[2])
			} else {
				vals = append(vals, strings.ReplaceAll(l[1], "''", "'"))
			}
		}
		return vals
	}
	add(anyRe, lits)
	add(eqRe, lits)
	return out
}

func isWordByte(b byte) bool {
	return b == '_' || b == '$' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
}

func isKeyword(s string) bool {
	return slices.Contains([]string{"CHECK", "AND", "OR", "NOT", "ANY", "ARRAY", "NULL", "true", "false"}, s)
}
