// Command demodb creates the demo's staging and production databases on the
// local PostgreSQL (dropping earlier ones), loads the demo schema and data,
// injects a few orphans into staging so the remediation gate shows, and
// prints the DSNs as shell assignments for scripts/demo.sh.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/demo"
)

func main() {
	admin := flag.String("admin", envOr("FKROLLOUT_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "admin DSN")
	prefix := flag.String("prefix", "fkr_demo", "database name prefix")
	orphans := flag.Int("orphans", 3, "orphans injected into staging per affected constraint")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, *admin, *prefix, *orphans); err != nil {
		fmt.Fprintln(os.Stderr, "demodb:", err)
		os.Exit(1)
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// orphanTargets are the constraints that get orphans in staging: one that
// cannot be NULL (delete) and one more, as the seeds' audit would find.
var orphanTargets = []string{"fk_workflow_stages_workflow_instance", "fk_vendor_master_workspace"}

func run(ctx context.Context, admin, prefix string, orphans int) error {
	for _, env := range []string{"staging", "production"} {
		dsn, err := demo.CreateDatabase(ctx, admin, prefix+"_"+env, true)
		if err != nil {
			return fmt.Errorf("create %s database: %w", env, err)
		}
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", env, err)
		}
		err = func() error {
			defer pool.Close()
			if err := demo.Setup(ctx, pool); err != nil {
				return fmt.Errorf("schema: %w", err)
			}
			if _, err := demo.Seed(ctx, pool, demo.Options{Workspaces: 3, WorkflowsPerWorkspace: 50, Seed: 42}); err != nil {
				return fmt.Errorf("seed: %w", err)
			}
			if env == "staging" && orphans > 0 {
				for _, fk := range orphanTargets {
					if err := demo.InjectOrphans(ctx, pool, fk, orphans); err != nil {
						return fmt.Errorf("inject orphans into %s: %w", fk, err)
					}
				}
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("%s: %w", env, err)
		}
		fmt.Printf("FKROLLOUT_DSN_%s='%s'\n", map[string]string{"staging": "STAGING", "production": "PRODUCTION"}[env], dsn)
	}
	return nil
}
