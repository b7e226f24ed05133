package discover

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// MetaSchema is fkrollout's bookkeeping schema; never searched by default.
const MetaSchema = "fkrollout"

// Type OIDs the scoring needs to tell apart.
const (
	oidInt2    = 21
	oidInt4    = 23
	oidInt8    = 20
	oidText    = 25
	oidVarchar = 1043
	oidUUID    = 2950
)

type column struct {
	Num      int16
	Name     string
	BaseType uint32 // the domain's base type for domains
	TypeName string // format_type of the declared type, for casts
	Category string // pg_type.typcategory of the base type
	Nullable bool
}

type table struct {
	OID    uint32
	Schema string
	Name   string
	// EstRows is reltuples, else n_live_tup; -1 when neither is known
	// (never analyzed).
	EstRows int64
	Pages   int64
	Writes  int64 // n_tup_ins + n_tup_upd + n_tup_del since the stats reset
	Columns []*column
	byNum   map[int16]*column
}

func (t *table) ident() string { return pgx.Identifier{t.Schema, t.Name}.Sanitize() }

func (t *table) display() string { return qualified(t.Schema, t.Name) }

// key is a primary key, unique constraint or unique index a foreign key
// can reference: immediate, not partial, no expressions.
type key struct {
	Table   *table
	Name    string
	Primary bool
	Cols    []*column
}

type index struct {
	Table *table
	Name  string
	Cols  []int16 // 0 for an expression column
}

type existingFK struct {
	Child, Parent    uint32
	Cols, ParentCols []int16
	ChildT, ParentT  *table
	childKey         string
}

type catalogData struct {
	tables  []*table
	byOID   map[uint32]*table
	keys    []*key
	indexes []index
	fks     []existingFK
	// names holds every constraint name per schema: PostgreSQL picks a
	// default name free in the whole schema.
	names map[string]map[string]bool
}

// schemaFilter is every user schema unless $1 lists some.
const schemaFilter = `(CASE WHEN cardinality($1::text[]) > 0 THEN n.nspname = ANY($1::text[])
  ELSE n.nspname NOT IN ('pg_catalog', 'information_schema', '` + MetaSchema + `')
   AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%' END)`

// The catalog queries read pg_class/pg_attribute/pg_index only: no lock on
// any user table, so a table held by an ACCESS EXCLUSIVE lock does not
// stall discovery here.
const tablesSQL = `
SELECT c.oid, n.nspname, c.relname,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint
            WHEN coalesce(s.n_live_tup, 0) > 0 THEN s.n_live_tup ELSE -1 END,
       c.relpages::bigint,
       coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ` + schemaFilter + `
ORDER BY n.nspname, c.relname`

const columnsSQL = `
SELECT a.attrelid, a.attnum, a.attname, bt.oid, format_type(a.atttypid, a.atttypmod),
       bt.typcategory::text, NOT a.attnotnull
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

const indexesSQL = `
SELECT i.indrelid, coalesce(k.conname, ic.relname), i.indisprimary,
       i.indisunique AND i.indimmediate AND i.indexprs IS NULL AS referencable,
       i.indpred IS NULL AND am.amname = 'btree' AS supports_fk,
       array(SELECT x FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(x, o)
             WHERE o <= i.indnkeyatts ORDER BY o)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u')
WHERE i.indrelid = ANY($1::oid[]) AND i.indisvalid AND i.indisready AND i.indpred IS NULL
ORDER BY i.indrelid, i.indisprimary DESC, 2`

const fksSQL = `
SELECT k.conrelid, k.conkey, k.confrelid, k.confkey
FROM pg_constraint k
WHERE k.contype = 'f' AND k.conparentid = 0
  AND (k.conrelid = ANY($1::oid[]) OR k.confrelid = ANY($1::oid[]))`

const namesSQL = `
SELECT n.nspname, k.conname FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
WHERE ` + schemaFilter

// loadCatalog reads tables, columns, keys, indexes and foreign keys of the
// chosen schemas in one read-only transaction (one snapshot).
func loadCatalog(ctx context.Context, tx querier, schemas []string) (*catalogData, error) {
	if schemas == nil {
		schemas = []string{}
	}
	c := &catalogData{byOID: map[uint32]*table{}, names: map[string]map[string]bool{}}
	if err := c.loadTables(ctx, tx, schemas); err != nil {
		return nil, err
	}
	oids := make([]uint32, len(c.tables))
	for i, t := range c.tables {
		oids[i] = t.OID
	}
	steps := []func() error{
		func() error { return c.loadColumns(ctx, tx, oids) },
		func() error { return c.loadIndexes(ctx, tx, oids) },
		func() error { return c.loadFKs(ctx, tx, oids) },
		func() error { return c.loadNames(ctx, tx, schemas) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *catalogData) loadTables(ctx context.Context, tx querier, schemas []string) error {
	rows, err := tx.Query(ctx, tablesSQL, schemas)
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*table, error) {
		t := &table{byNum: map[int16]*column{}}
		return t, r.Scan(&t.OID, &t.Schema, &t.Name, &t.EstRows, &t.Pages, &t.Writes)
	})
	if err != nil {
		return fmt.Errorf("list tables: %w", err)
	}
	c.tables = ts
	for _, t := range ts {
		c.byOID[t.OID] = t
	}
	return nil
}

func (c *catalogData) loadColumns(ctx context.Context, tx querier, oids []uint32) error {
	rows, err := tx.Query(ctx, columnsSQL, oids)
	if err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rel uint32
		col := &column{}
		if err := rows.Scan(&rel, &col.Num, &col.Name, &col.BaseType, &col.TypeName, &col.Category, &col.Nullable); err != nil {
			return fmt.Errorf("list columns: %w", err)
		}
		if t := c.byOID[rel]; t != nil {
			t.Columns = append(t.Columns, col)
			t.byNum[col.Num] = col
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	return nil
}

func (c *catalogData) loadIndexes(ctx context.Context, tx querier, oids []uint32) error {
	rows, err := tx.Query(ctx, indexesSQL, oids)
	if err != nil {
		return fmt.Errorf("list keys and indexes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rel uint32
		var name string
		var primary, referencable, supports bool
		var nums []int16
		if err := rows.Scan(&rel, &name, &primary, &referencable, &supports, &nums); err != nil {
			return fmt.Errorf("list keys and indexes: %w", err)
		}
		t := c.byOID[rel]
		if t == nil {
			continue
		}
		if supports {
			c.indexes = append(c.indexes, index{Table: t, Name: name, Cols: nums})
		}
		if k := newKey(t, name, primary, nums); referencable && k != nil && !c.hasKey(k) {
			c.keys = append(c.keys, k)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list keys and indexes: %w", err)
	}
	return nil
}

// newKey builds a key from attribute numbers; nil when one is an
// expression (0) or unknown.
func newKey(t *table, name string, primary bool, nums []int16) *key {
	k := &key{Table: t, Name: name, Primary: primary}
	for _, n := range nums {
		col := t.byNum[n]
		if col == nil {
			return nil
		}
		k.Cols = append(k.Cols, col)
	}
	return k
}

// hasKey: a unique index duplicating another key on the same columns adds
// no candidate.
func (c *catalogData) hasKey(k *key) bool {
	for _, o := range c.keys {
		if o.Table == k.Table && slices.Equal(colNums(o.Cols), colNums(k.Cols)) {
			return true
		}
	}
	return false
}

func (c *catalogData) loadFKs(ctx context.Context, tx querier, oids []uint32) error {
	rows, err := tx.Query(ctx, fksSQL, oids)
	if err != nil {
		return fmt.Errorf("list foreign keys: %w", err)
	}
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (existingFK, error) {
		var fk existingFK
		return fk, r.Scan(&fk.Child, &fk.Cols, &fk.Parent, &fk.ParentCols)
	})
	if err != nil {
		return fmt.Errorf("list foreign keys: %w", err)
	}
	for _, fk := range fks {
		fk.ChildT, fk.ParentT = c.byOID[fk.Child], c.byOID[fk.Parent]
		fk.childKey = colsetID(fk.Child, fk.Cols)
		c.fks = append(c.fks, fk)
	}
	return nil
}

func (c *catalogData) loadNames(ctx context.Context, tx querier, schemas []string) error {
	rows, err := tx.Query(ctx, namesSQL, schemas)
	if err != nil {
		return fmt.Errorf("list constraint names: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var schema, name string
		if err := rows.Scan(&schema, &name); err != nil {
			return fmt.Errorf("list constraint names: %w", err)
		}
		if c.names[schema] == nil {
			c.names[schema] = map[string]bool{}
		}
		c.names[schema][name] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list constraint names: %w", err)
	}
	return nil
}

// hasFK reports whether the child columns already carry a foreign key
// (to any parent): those columns are not searched.
func (c *catalogData) hasFK(t *table, cols []*column) bool {
	id := colsetID(t.OID, colNums(cols))
	for _, fk := range c.fks {
		if fk.childKey == id {
			return true
		}
	}
	return false
}

// referencedBy counts the foreign keys that already point at t.
func (c *catalogData) referencedBy(t *table) int {
	n := 0
	for _, fk := range c.fks {
		if fk.Parent == t.OID {
			n++
		}
	}
	return n
}

// supportingIndex is the first btree index whose leading columns are the
// FK columns in any order: what the referential check on a parent DELETE
// needs (the rule internal/stats applies).
func (c *catalogData) supportingIndex(t *table, cols []*column) string {
	want := colNums(cols)
	slices.Sort(want)
	for _, ix := range c.indexes {
		if ix.Table != t || len(ix.Cols) < len(want) {
			continue
		}
		lead := slices.Clone(ix.Cols[:len(want)])
		slices.Sort(lead)
		if slices.Equal(lead, want) {
			return ix.Name
		}
	}
	return ""
}

func colNums(cols []*column) []int16 {
	out := make([]int16, len(cols))
	for i, c := range cols {
		out[i] = c.Num
	}
	return out
}

func colNames(cols []*column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

func colsetID(rel uint32, nums []int16) string {
	parts := make([]string, len(nums))
	for i, n := range nums {
		parts[i] = strconv.Itoa(int(n))
	}
	return strconv.FormatUint(uint64(rel), 10) + ":" + strings.Join(parts, ",")
}

// qualified is schema.name for humans, quoting only where needed.
func qualified(schema, name string) string {
	return plan.QuoteIfNeeded(schema) + "." + plan.QuoteIfNeeded(name)
}
