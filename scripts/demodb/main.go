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

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/demo"
)

func main() {
	admin := flag.String("admin", envOr("FKROLLOUT_TEST_PG", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"), "admin DSN")
	prefix := flag.String("prefix", "fkr_demo", "database name prefix")
	orphans := flag.Int("orphans", 3, "orphans injected into staging per affected constraint")
	check := flag.Bool("check", false, "only check that the admin DSN connects as a superuser; print the server's major version")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if *check {
		major, err := checkServer(ctx, *admin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(major)
		return
	}
	if err := run(ctx, *admin, *prefix, *orphans); err != nil {
		fmt.Fprintln(os.Stderr, "demodb:", err)
		os.Exit(1)
	}
}

// checkServer connects with the admin DSN and reports the server's major
// version; it fails with what is wrong when the demo cannot create its
// databases there.
func checkServer(ctx context.Context, admin string) (int, error) {
	cfg, err := pgx.ParseConfig(admin)
	if err != nil {
		return 0, fmt.Errorf("admin DSN (FKROLLOUT_TEST_PG) does not parse: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("cannot connect to PostgreSQL at %s:%d as %q: %w", cfg.Host, cfg.Port, cfg.User, err)
	}
	defer conn.Close(ctx)
	var num int
	var super, createdb bool
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user`).Scan(&num, &super, &createdb)
	if err != nil {
		return 0, fmt.Errorf("query the server version: %w", err)
	}
	if !super && !createdb {
		return 0, fmt.Errorf("PostgreSQL user %q may not create databases (needs CREATEDB or superuser)", cfg.User)
	}
	return num / 10000, nil
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
