// Package expect measures the figures a runbook states for a database
// after a rollout (validated foreign keys, CHECK constraints, tables,
// orphans, aligned column types, the team's own read-only queries) and
// compares them with what the plan and the worker's configuration expect.
// Nothing here writes: every statement runs in a READ ONLY transaction
// under the worker's lock policy.
package expect

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Config is an environment's expect: section of the worker configuration:
// the plan's figures plus the runbook queries, whose SQL only the worker's
// configuration may hold.
type Config struct {
	ForeignKeys      *plan.Count `yaml:"foreign_keys"`
	CheckConstraints *plan.Count `yaml:"check_constraints"`
	Tables           *plan.Count `yaml:"tables"`
	Orphans          *plan.Count `yaml:"orphans"`
	TypesAligned     *bool       `yaml:"types_aligned"`
	Queries          []Query     `yaml:"queries"`
}

// Query is one read-only runbook query and what it must return: the
// first column of the first row as text (NULL reads "NULL"), and/or a row
// count.
type Query struct {
	Name        string      `yaml:"name"`
	SQL         string      `yaml:"sql"`
	ExpectValue *string     `yaml:"expect_value"`
	ExpectRows  *plan.Count `yaml:"expect_rows"`
}

// NullText is how a NULL first value reads.
const NullText = "NULL"

// Figures are the expectations Config states besides its queries.
func (c Config) Figures() *plan.Expectations {
	return &plan.Expectations{ForeignKeys: c.ForeignKeys, CheckConstraints: c.CheckConstraints, Tables: c.Tables,
		Orphans: c.Orphans, TypesAligned: c.TypesAligned}
}

// Empty reports whether c states nothing.
func (c Config) Empty() bool { return c.Figures().Empty() && len(c.Queries) == 0 }

// Validate names every problem under prefix (environments.<name>.expect):
// bad counts, queries without a name, repeated names, SQL that is not one
// SELECT, queries that expect nothing.
func (c Config) Validate(prefix string) error {
	var errs []error
	if err := c.Figures().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s.%w", prefix, err))
	}
	seen := map[string]bool{}
	for i, q := range c.Queries {
		where := fmt.Sprintf("%s.queries[%d]", prefix, i)
		if q.Name != "" {
			where += " (" + q.Name + ")"
		}
		switch {
		case strings.TrimSpace(q.Name) == "":
			errs = append(errs, fmt.Errorf("%s.name: required", where))
		case seen[q.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q is used twice", where, q.Name))
		}
		seen[q.Name] = true
		if err := singleSelect(q.SQL); err != nil {
			errs = append(errs, fmt.Errorf("%s.sql: %w", where, err))
		}
		if q.ExpectValue == nil && q.ExpectRows == nil {
			errs = append(errs, fmt.Errorf("%s: needs expect_value or expect_rows (a query that expects nothing proves nothing)", where))
		}
		if err := q.ExpectRows.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s.expect_rows: %w", where, err))
		}
	}
	return errors.Join(errs...)
}

// singleSelect accepts exactly one SELECT (WITH … SELECT included): the
// READ ONLY transaction refuses writes anyway, this refuses them before
// anything runs, with the reason.
func singleSelect(sql string) error {
	if strings.TrimSpace(sql) == "" {
		return errors.New("required")
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return fmt.Errorf("does not parse: %w", err)
	}
	if n := len(tree.Stmts); n != 1 {
		return fmt.Errorf("holds %d statements, want one SELECT", n)
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil {
		return errors.New("is not a SELECT (runbook queries only read)")
	}
	if sel.IntoClause != nil {
		return errors.New("SELECT INTO creates a table: runbook queries only read")
	}
	return nil
}

// Figures are what Measure found in the environment's schemas.
type Figures struct {
	ForeignKeys         int64 `json:"foreign_keys"`
	ForeignKeysNotValid int64 `json:"foreign_keys_not_valid"`
	CheckConstraints    int64 `json:"check_constraints"`
	Tables              int64 `json:"tables"`
	// TypeMismatches are "constraint: table.column type → ref.column type".
	TypeMismatches []string `json:"type_mismatches,omitempty"`
}

// Measure counts validated and NOT VALID foreign keys, CHECK constraints
// and tables in schemas (constraints a partition inherits and partitions
// themselves are not counted again) and lists foreign-key columns whose
// type differs from the referenced column's.
func Measure(ctx context.Context, db dbx.Beginner, schemas []string, lock dbx.LockPolicy) (Figures, error) {
	var f Figures
	err := readOnly(ctx, db, lock, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT
			count(*) FILTER (WHERE c.contype = 'f' AND c.conparentid = 0 AND c.convalidated),
			count(*) FILTER (WHERE c.contype = 'f' AND c.conparentid = 0 AND NOT c.convalidated),
			count(*) FILTER (WHERE c.contype = 'c' AND NOT r.relispartition)
			FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
			WHERE n.nspname = ANY($1)`, schemas).Scan(&f.ForeignKeys, &f.ForeignKeysNotValid, &f.CheckConstraints)
		if err != nil {
			return fmt.Errorf("count constraints: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace
			WHERE r.relkind IN ('r', 'p') AND NOT r.relispartition AND n.nspname = ANY($1)`, schemas).Scan(&f.Tables); err != nil {
			return fmt.Errorf("count tables: %w", err)
		}
		rows, err := tx.Query(ctx, `SELECT format('%s: %s.%s %s → %s.%s %s', c.conname, r.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod),
				c.confrelid::regclass, af.attname, format_type(af.atttypid, af.atttypmod))
			FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
			CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(child, parent)
			JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.child
			JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = k.parent
			WHERE c.contype = 'f' AND c.conparentid = 0 AND n.nspname = ANY($1) AND a.atttypid <> af.atttypid
			ORDER BY 1`, schemas)
		if err != nil {
			return fmt.Errorf("compare column types: %w", err)
		}
		f.TypeMismatches, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("compare column types: %w", err)
		}
		return nil
	})
	return f, err
}

// Answer is what a runbook query returned.
type Answer struct {
	Rows int64
	// First is the first column of the first row as PostgreSQL writes it
	// (NullText for NULL); empty when there is no row.
	First string
}

// maxRows bounds how many rows of a runbook query are counted.
const maxRows = 100000

// Run runs one runbook query in a READ ONLY transaction under the lock
// policy, reading results as text so a value compares as psql shows it.
func Run(ctx context.Context, db dbx.Beginner, q Query, lock dbx.LockPolicy) (Answer, error) {
	if err := singleSelect(q.SQL); err != nil {
		return Answer{}, fmt.Errorf("runbook query %q: sql %w", q.Name, err)
	}
	var a Answer
	err := readOnly(ctx, db, lock, func(ctx context.Context, tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q.SQL, pgx.QueryResultFormats{pgx.TextFormatCode})
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if a.Rows == 0 {
				if raw := rows.RawValues(); len(raw) > 0 {
					a.First = NullText
					if raw[0] != nil {
						a.First = string(raw[0])
					}
				}
			}
			a.Rows++
			if a.Rows >= maxRows {
				break
			}
		}
		return rows.Err()
	})
	if err != nil {
		return a, fmt.Errorf("runbook query %q: %w", q.Name, err)
	}
	return a, nil
}

// readOnly runs fn in a READ ONLY transaction with the lock policy's
// lock_timeout and statement_timeout (retried on 55P03 like any statement).
func readOnly(ctx context.Context, db dbx.Beginner, lock dbx.LockPolicy, fn func(context.Context, pgx.Tx) error) error {
	return dbx.InLockedTx(ctx, db, lock, nil, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
			return fmt.Errorf("set read only: %w", err)
		}
		return fn(ctx, tx)
	})
}
