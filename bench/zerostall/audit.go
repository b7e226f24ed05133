package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/demo"
	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

// AuditBench compares fkrollout's audit of every demo FK (bounded
// parallelism) with the same anti-joins run one after another through psql.
type AuditBench struct {
	FKs         int              `json:"fks"`
	Parallelism int              `json:"parallelism"`
	Workflows   int              `json:"workflows"`
	Rows        int64            `json:"rows"`
	Counts      map[string]int64 `json:"counts"`
	SeedMS      float64          `json:"seed_ms"`
	FkrolloutMS []float64        `json:"fkrollout_ms"`
	PsqlMS      []float64        `json:"psql_ms"`
	Ratio       float64          `json:"ratio"`
	// PsqlSerialMS is psql with max_parallel_workers_per_gather = 0: one
	// core per anti-join, the "sequential" of a server without parallel
	// query; SerialRatio compares against it.
	PsqlSerialMS []float64 `json:"psql_serial_ms"`
	SerialRatio  float64   `json:"serial_ratio"`
}

// orphanCount is the anti-join the audit runs (MATCH SIMPLE: a row with a
// NULL FK column is not an orphan).
func orphanCount(fk plan.ForeignKey) string {
	var eq, nn []string
	for i, col := range fk.Columns {
		cc := "c." + pgx.Identifier{col}.Sanitize()
		eq = append(eq, "p."+pgx.Identifier{fk.RefColumns[i]}.Sanitize()+" = "+cc)
		nn = append(nn, cc+" IS NOT NULL")
	}
	return "SELECT count(*) FROM " + fk.Table.Sanitize() + " c WHERE " + strings.Join(nn, " AND ") +
		" AND NOT EXISTS (SELECT 1 FROM " + fk.RefTable.Sanitize() + " p WHERE " + strings.Join(eq, " AND ") + ");\n"
}

// auditBench builds the demo schema in its own database, seeds it at
// -demo-workflows workflows, and audits the demo migration's 16 foreign keys.
func auditBench(ctx context.Context, c config) (*AuditBench, error) {
	p, err := sqlplan.ParseSQL(sqlassets.Migration)
	if err != nil {
		return nil, fmt.Errorf("demo plan: %w", err)
	}
	name := "fkr_bench_demo_" + randHex(4)
	dsn, err := demo.CreateDatabase(ctx, c.dsn, name, true)
	if err != nil {
		return nil, err
	}
	defer func() {
		if c.keep {
			return
		}
		if admin, err := pgx.Connect(context.Background(), c.dsn); err == nil {
			_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			_ = admin.Close(context.Background())
		}
	}()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	const workspaces = 10
	ab := &AuditBench{FKs: len(p.ForeignKeys), Parallelism: c.auditParallelism, Workflows: max(c.demoWorkflows/workspaces, 1) * workspaces}
	t0 := time.Now()
	if err := demo.Setup(ctx, pool); err != nil {
		return nil, err
	}
	counts, err := demo.Seed(ctx, pool, demo.Options{Workspaces: workspaces, WorkflowsPerWorkspace: ab.Workflows / workspaces, Seed: 7})
	if err != nil {
		return nil, err
	}
	ab.SeedMS = ms(time.Since(t0))
	ab.Counts = counts
	for _, n := range counts {
		ab.Rows += n
	}
	log.Printf("zerostall: demo schema seeded with %d rows in %s", ab.Rows, time.Since(t0).Round(time.Millisecond))

	script, err := os.CreateTemp("", "zerostall-audit-*.sql")
	if err != nil {
		return nil, err
	}
	defer os.Remove(script.Name())
	for _, fk := range p.ForeignKeys {
		script.WriteString(orphanCount(fk))
	}
	script.Close()
	for range c.repeats {
		t0 := time.Now()
		res, err := audit.Audit(ctx, pool, p.ForeignKeys, audit.Options{Parallelism: c.auditParallelism})
		if err != nil {
			return nil, err
		}
		ab.FkrolloutMS = append(ab.FkrolloutMS, ms(time.Since(t0)))
		for _, r := range res {
			if r.Orphans != 0 {
				return nil, fmt.Errorf("audit: %s has %d orphans; the seeded data has none", r.FK, r.Orphans)
			}
		}
		t0 = time.Now()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", script.Name())
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("psql audit: %v: %s", err, out)
		}
		ab.PsqlMS = append(ab.PsqlMS, ms(time.Since(t0)))

		t0 = time.Now()
		cmd = exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", script.Name())
		cmd.Env = append(os.Environ(), "PGOPTIONS=-c max_parallel_workers_per_gather=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("psql audit: %v: %s", err, out)
		}
		ab.PsqlSerialMS = append(ab.PsqlSerialMS, ms(time.Since(t0)))
	}
	ab.Ratio = median(ab.FkrolloutMS) / median(ab.PsqlMS)
	ab.SerialRatio = median(ab.FkrolloutMS) / median(ab.PsqlSerialMS)
	log.Printf("zerostall: audit of %d FKs fkrollout %v ms, psql %v ms, ratio %.3f; psql without parallel query %v ms, ratio %.3f", ab.FKs, ab.FkrolloutMS, ab.PsqlMS, ab.Ratio, ab.PsqlSerialMS, ab.SerialRatio)
	return ab, nil
}
