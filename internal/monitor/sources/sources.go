// Package sources measures what the production monitor's rules read: a
// PostgreSQL database (statement statistics, transaction counts, probes,
// FK violations in the server log), Prometheus queries and HTTP smoke
// checks. The rules, the evaluator and the watch loop are in package
// monitor, which links none of these clients.
package sources

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
)

// Deps are what building sources needs from the worker.
type Deps struct {
	// DB resolves a worker environment name to its database (the worker
	// keeps the DSNs; they never reach a source's configuration).
	DB func(ctx context.Context, environment string) (DB, error)
	// Tables are the rollout's tables, tracked by postgres sources.
	Tables     []plan.TableName
	HTTPClient *http.Client
	Now        func() time.Time
}

// Build returns the named sources, in the order given. An unknown name is
// an error naming the configured ones.
func Build(ctx context.Context, c monitor.Config, names []string, deps Deps) ([]monitor.Source, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("no monitor sources chosen (configured: %s)", strings.Join(slices.Sorted(maps.Keys(c.Sources)), ", "))
	}
	var out []monitor.Source
	for _, name := range names {
		sc, ok := c.Sources[name]
		if !ok {
			return nil, fmt.Errorf("monitor source %q is not configured on this worker (configured: %s)", name, strings.Join(slices.Sorted(maps.Keys(c.Sources)), ", "))
		}
		switch sc.Kind {
		case monitor.KindPostgres:
			if deps.DB == nil {
				return nil, fmt.Errorf("monitor source %q: no database resolver", name)
			}
			db, err := deps.DB(ctx, sc.Environment)
			if err != nil {
				return nil, fmt.Errorf("monitor source %q: %w", name, err)
			}
			tables := slices.Clone(deps.Tables)
			for _, t := range sc.Tables {
				tn, err := parseTable(t)
				if err != nil {
					return nil, fmt.Errorf("monitor source %q: %w", name, err)
				}
				tables = append(tables, tn)
			}
			src := &PGSource{SourceName: name, DB: db, Tables: plan.UniqueTables(tables), MinCalls: sc.MinCalls, Probes: sc.Probes, Now: deps.Now}
			if sc.LogPath != "" {
				src.Log = &LogTail{Path: sc.LogPath, Format: sc.LogFormat}
			}
			out = append(out, src)
		case monitor.KindPrometheus:
			src, err := NewPromSource(name, sc.URL, sc.Queries, sc.CollectTimeout())
			if err != nil {
				return nil, err
			}
			src.Now = deps.Now
			src.BaselineDays = sc.BaselineDays
			out = append(out, src)
		case monitor.KindHTTP:
			client := deps.HTTPClient
			if client == nil {
				client = &http.Client{Timeout: sc.CollectTimeout()}
			}
			out = append(out, &HTTPSource{SourceName: name, Checks: sc.Checks, Client: client})
		default:
			return nil, fmt.Errorf("monitor source %q: kind %q (want postgres, prometheus or http)", name, sc.Kind)
		}
	}
	return out, nil
}

// parseTable reads "schema.table" or "table" (public).
func parseTable(s string) (plan.TableName, error) {
	schema, name, ok := strings.Cut(s, ".")
	if !ok {
		schema, name = "public", s
	}
	if schema == "" || name == "" {
		return plan.TableName{}, fmt.Errorf("table %q: want schema.table", s)
	}
	return plan.TableName{Schema: schema, Name: name}, nil
}

// ListForeignKeys returns every foreign key of the given schemas (all user
// schemas when none), NOT VALID ones included, built from pg_constraint.
// Per-partition clones of a partitioned table's key are skipped: the user
// declared it once.
func ListForeignKeys(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, schemas []string) ([]monitor.CatalogFK, error) {
	const sql = `
SELECT n.nspname, c.relname, k.conname, rn.nspname, rc.relname,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i)::text[],
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY u(attnum, i)
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum ORDER BY u.i)::text[],
       k.confdeltype::text, k.confupdtype::text, k.confmatchtype::text, k.condeferrable, k.condeferred, k.convalidated
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class rc ON rc.oid = k.confrelid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE k.contype = 'f' AND k.conparentid = 0
  AND (CASE WHEN cardinality($1::text[]) > 0 THEN n.nspname = ANY($1::text[])
       ELSE n.nspname NOT IN ('pg_catalog', 'information_schema', 'fkrollout') AND n.nspname NOT LIKE 'pg\_%' END)
ORDER BY n.nspname, c.relname, k.conname`
	if schemas == nil {
		schemas = []string{}
	}
	rows, err := q.Query(ctx, sql, schemas)
	if err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	defer rows.Close()
	var out []monitor.CatalogFK
	for rows.Next() {
		var fk plan.ForeignKey
		var del, upd, match string
		var cf monitor.CatalogFK
		if err := rows.Scan(&fk.Table.Schema, &fk.Table.Name, &fk.Name, &fk.RefTable.Schema, &fk.RefTable.Name,
			&fk.Columns, &fk.RefColumns, &del, &upd, &match, &fk.Deferrable, &fk.InitiallyDeferred, &cf.Validated); err != nil {
			return nil, fmt.Errorf("list foreign keys: %w", err)
		}
		fk.OnDelete, fk.OnUpdate = actionCode(del), actionCode(upd)
		if match == "f" {
			fk.Match = plan.MatchFull
		}
		fk.Priority = plan.PriorityLow
		cf.FK = fk
		out = append(out, cf)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list foreign keys: %w", err)
	}
	return out, nil
}

func actionCode(c string) plan.Action {
	switch c {
	case "r":
		return plan.ActionRestrict
	case "c":
		return plan.ActionCascade
	case "n":
		return plan.ActionSetNull
	case "d":
		return plan.ActionSetDefault
	}
	return plan.ActionNoAction
}
