package behave

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// synthError means a test row could not be made (unknown type, CHECK or
// trigger rejected every attempt): the case is reported skipped with it.
// retryable marks a rejection by the database, which alternative values
// may avoid; a type with no generator will not change on retry.
type synthError struct {
	reason    string
	retryable bool
}

func (e *synthError) Error() string { return e.reason }

func skipf(format string, args ...any) error {
	return &synthError{reason: fmt.Sprintf(format, args...)}
}

// attempts is how many value sets synthesis tries per row: the first, and
// one alternative for the columns CHECK constraints mention.
const attempts = 2

// maxDepth bounds how many parent rows deep synthesis follows existing
// foreign keys (child → parent → grandparent ...).
const maxDepth = 4

// values maps column → text value; nil means NULL.
type values map[string]*string

func strPtr(s string) *string { return &s }

// row is an inserted test row: the values it was inserted with, the values
// read back (defaults applied, canonical text), and where it is: its ctid
// and, since a ctid is only unique within one partition, its tableoid.
type row struct {
	sent     values
	returned values
	tableoid string
	ctid     string
}

// synth makes rows inside one case's transaction. It caches table metadata
// for the whole Run and numbers savepoints.
type synth struct {
	tables map[plan.TableName]*tableInfo
	sp     int
}

func (s *synth) table(ctx context.Context, tx pgx.Tx, name plan.TableName) (*tableInfo, error) {
	if t, ok := s.tables[name]; ok {
		return t, nil
	}
	t, err := loadTable(ctx, tx, name)
	if err != nil {
		return nil, err
	}
	s.tables[name] = t
	return t, nil
}

func (s *synth) savepoint(ctx context.Context, tx pgx.Tx) (string, error) {
	s.sp++
	name := "fkr_behave_" + strconv.Itoa(s.sp)
	if _, err := tx.Exec(ctx, "SAVEPOINT "+name); err != nil {
		return "", fmt.Errorf("savepoint: %w", err)
	}
	return name, nil
}

func rollbackTo(ctx context.Context, tx pgx.Tx, sp string) error {
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
		return fmt.Errorf("rollback to savepoint: %w", err)
	}
	return nil
}

// insertRow synthesizes and inserts one row of t with the fixed columns set,
// creating parent rows for the table's other NOT NULL foreign keys. Each
// attempt runs under a savepoint, so a rejected attempt leaves nothing.
func (s *synth) insertRow(ctx context.Context, tx pgx.Tx, name plan.TableName, fixed values, depth int) (row, error) {
	t, err := s.table(ctx, tx, name)
	if err != nil {
		return row{}, err
	}
	var reasons []string
	for attempt := range attempts {
		sp, err := s.savepoint(ctx, tx)
		if err != nil {
			return row{}, err
		}
		r, err := s.tryInsert(ctx, tx, t, fixed, depth, attempt)
		if err == nil {
			return r, nil
		}
		if !isSynthFailure(err) {
			return row{}, err // the case's transaction is rolled back by the caller
		}
		if rerr := rollbackTo(ctx, tx, sp); rerr != nil {
			return row{}, rerr
		}
		reasons = append(reasons, fmt.Sprintf("attempt %d: %v", attempt+1, err))
		var se *synthError
		if errors.As(err, &se) && !se.retryable {
			break // a type we cannot produce will not change on retry
		}
	}
	return row{}, skipf("cannot synthesize a row for %s: %s", name, strings.Join(reasons, "; "))
}

func (s *synth) tryInsert(ctx context.Context, tx pgx.Tx, t *tableInfo, fixed values, depth, attempt int) (row, error) {
	vals, err := s.build(ctx, tx, t, fixed, depth, attempt)
	if err != nil {
		return row{}, err
	}
	r, err := execInsert(ctx, tx, t, vals)
	if err != nil && dbx.Code(err) != "" && isSynthFailure(err) {
		return row{}, &synthError{reason: fmt.Sprintf("%s rejected the row: %v", t.Name, err), retryable: true}
	}
	return r, err
}

// build picks a value for every column the insert must set.
func (s *synth) build(ctx context.Context, tx pgx.Tx, t *tableInfo, fixed values, depth, attempt int) (values, error) {
	vals := values{}
	for k, v := range fixed {
		vals[k] = v
	}
	// A partitioned table's key columns come from a leaf's bounds.
	routed := t.routeValues(fixed, attempt)
	// Follow the table's existing foreign keys: a NOT NULL one (or one the
	// partition bounds set) needs a real parent row (synthesized, never an
	// existing one), a nullable one is left NULL.
	for _, fk := range t.FKs {
		set, unset := 0, 0
		needed := false
		seed := values{} // parent key values the partition bounds dictate
		for i, c := range fk.Columns {
			if _, ok := vals[c]; ok {
				set++
				continue
			}
			unset++
			if v, ok := routed[c]; ok {
				needed = needed || v != nil
				seed[fk.RefColumns[i]] = v
			} else if col, _ := t.col(c); col.NotNull && (!col.HasDefault || col.usesSequence()) {
				needed = true
			}
		}
		if unset == 0 || set > 0 || !needed {
			continue
		}
		if fk.RefTable == t.Name {
			// Self-reference with NOT NULL columns: the row points at itself.
			for i, c := range fk.Columns {
				rc := fk.RefColumns[i]
				if _, ok := vals[rc]; !ok {
					v, err := ownValue(t, rc, routed, attempt)
					if err != nil {
						return nil, err
					}
					vals[rc] = v
				}
				vals[c] = vals[rc]
			}
			continue
		}
		if depth >= maxDepth {
			return nil, skipf("%s needs parent rows more than %d levels deep (via %s)", t.Name, maxDepth, fk.Name)
		}
		parent, err := s.insertRow(ctx, tx, fk.RefTable, seed, depth+1)
		if err != nil {
			return nil, err
		}
		for i, c := range fk.Columns {
			vals[c] = parent.returned[fk.RefColumns[i]]
		}
	}
	for c, v := range routed {
		if _, ok := vals[c]; !ok {
			vals[c] = v
		}
	}
	for _, c := range t.Columns {
		if _, ok := vals[c.Name]; ok || c.Generated {
			continue
		}
		if (c.NotNull && !c.HasDefault) || c.usesSequence() {
			v, err := generate(c, t.Allowed[c.Name], attempt)
			if err != nil {
				return nil, err
			}
			vals[c.Name] = strPtr(v)
		}
	}
	return vals, nil
}

// ownValue is the value of column c for a new row: the partition route's,
// else generated.
func ownValue(t *tableInfo, c string, routed values, attempt int) (*string, error) {
	if v, ok := routed[c]; ok {
		return v, nil
	}
	col, _ := t.col(c)
	v, err := generate(col, t.Allowed[c], attempt)
	if err != nil {
		return nil, err
	}
	return strPtr(v), nil
}

// execInsert inserts vals (text cast to each column's type, so any type with
// a text input function works) and reads the whole row back as text.
// OVERRIDING SYSTEM VALUE lets explicit values replace identity columns, so
// no sequence is advanced.
func execInsert(ctx context.Context, tx pgx.Tx, t *tableInfo, vals values) (row, error) {
	var cols, params []string
	var args []any
	for _, c := range t.Columns {
		v, ok := vals[c.Name]
		if !ok {
			continue
		}
		args = append(args, v)
		cols = append(cols, pgx.Identifier{c.Name}.Sanitize())
		params = append(params, fmt.Sprintf("$%d::text::%s", len(args), c.Type))
	}
	ret := []string{"tableoid::oid::text", "ctid::text"}
	for _, c := range t.Columns {
		ret = append(ret, pgx.Identifier{c.Name}.Sanitize()+"::text")
	}
	var sql string
	if len(cols) == 0 {
		sql = "INSERT INTO " + t.Name.Sanitize() + " DEFAULT VALUES RETURNING " + strings.Join(ret, ", ")
	} else {
		sql = "INSERT INTO " + t.Name.Sanitize() + " (" + strings.Join(cols, ", ") + ") OVERRIDING SYSTEM VALUE VALUES (" +
			strings.Join(params, ", ") + ") RETURNING " + strings.Join(ret, ", ")
	}
	dest := make([]*string, len(t.Columns)+2)
	ptrs := make([]any, len(dest))
	for i := range dest {
		ptrs[i] = &dest[i]
	}
	if err := tx.QueryRow(ctx, sql, args...).Scan(ptrs...); err != nil {
		return row{}, err
	}
	r := row{sent: vals, returned: values{}, tableoid: *dest[0], ctid: *dest[1]}
	for i, c := range t.Columns {
		r.returned[c.Name] = dest[i+2]
	}
	return r, nil
}

// isSynthFailure tells a value the database rejected (retry, then skip) from
// an infrastructure problem (returned as an error).
func isSynthFailure(err error) bool {
	var se *synthError
	if errors.As(err, &se) {
		return true
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return false
	}
	switch pg.Code[:2] {
	case "22", "23", "P0": // data exception, integrity violation, RAISE in a trigger
		return true
	case "42": // e.g. no cast from text to the column's type
		return pg.Code != "42501" // insufficient privilege is an operator problem
	}
	return false
}

// generate returns a text value for c. attempt 1 produces alternatives for
// the columns CHECK constraints restrict, and allowed values come from
// simple IN lists.
func generate(c column, allowed []string, attempt int) (string, error) {
	if len(allowed) > 0 {
		return allowed[min(attempt, len(allowed)-1)], nil
	}
	if c.TypType == "e" {
		if len(c.EnumLabels) == 0 {
			return "", skipf("enum %s of column %s has no labels", c.Type, c.Name)
		}
		return c.EnumLabels[min(attempt, len(c.EnumLabels)-1)], nil
	}
	if c.Category == "A" {
		return "{}", nil
	}
	switch c.BaseType {
	case "int2":
		return strconv.Itoa(10000 + rand.N(20000)), nil
	case "int4":
		return strconv.Itoa(1_000_000_000 + rand.N(1_000_000_000)), nil
	case "int8":
		return strconv.FormatInt(1_000_000_000_000+rand.N(int64(1_000_000_000_000)), 10), nil
	case "numeric":
		return numeric(c.Typmod), nil
	case "float4", "float8":
		return strconv.Itoa(1 + rand.N(1_000_000)), nil
	case "money":
		return "1.00", nil
	case "text", "varchar", "bpchar", "name", "citext":
		return text(c, attempt), nil
	case "uuid":
		return uuid.NewString(), nil
	case "bool":
		return strconv.FormatBool(attempt == 0), nil
	case "date":
		return "2000-01-01", nil
	case "timestamp", "timestamptz":
		return "2000-01-01 00:00:00+00", nil
	case "time", "timetz":
		return "12:00:00", nil
	case "interval":
		return "1 day", nil
	case "json", "jsonb":
		if attempt == 0 {
			return "{}", nil
		}
		return "[]", nil
	case "bytea":
		return `\x00`, nil
	case "inet":
		return "192.0.2.1", nil
	case "cidr":
		return "192.0.2.0/24", nil
	case "macaddr":
		return "08:00:2b:01:02:03", nil
	case "tsvector":
		return "fkrollout", nil
	case "xml":
		return "<fkrollout/>", nil
	}
	return "", skipf("no value generator for NOT NULL column %s of type %s", c.Name, c.Type)
}

// text is a random token that fits varchar(n)/char(n); unique columns
// will not collide with real data.
func text(c column, attempt int) string {
	v := "fkr_" + strconv.FormatUint(rand.Uint64(), 36)
	if attempt > 0 {
		v = strings.ToUpper(strings.ReplaceAll(v, "_", "-"))
	}
	if (c.BaseType == "varchar" || c.BaseType == "bpchar") && c.Typmod > 4 {
		if n := int(c.Typmod - 4); len(v) > n {
			v = v[len(v)-n:] // keep the random tail
		}
	}
	return v
}

// numeric fits numeric(p, s): a random integer with at most p-s digits.
func numeric(typmod int32) string {
	if typmod < 4 {
		return strconv.Itoa(1 + rand.N(1_000_000_000))
	}
	p := int((typmod - 4) >> 16 & 0xffff)
	s := int((typmod - 4) & 0xffff)
	digits := min(p-s, 12)
	if digits <= 0 {
		return "0"
	}
	lo := int64(1)
	for range digits - 1 {
		lo *= 10
	}
	return strconv.FormatInt(lo+rand.N(lo*9), 10)
}
