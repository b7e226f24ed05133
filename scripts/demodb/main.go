// Command demodb creates the demo's staging and production databases on the
// local PostgreSQL (dropping earlier ones), loads the demo schema and data,
// injects a few orphans into staging so the remediation gate shows, and
// prints the DSNs as shell assignments for scripts/demo.sh.
//
// With -owner the tables belong to that role (created NOLOGIN when
// missing), not to the admin: the worker's role (sql/role.sql) becomes a
// member of the table owner, and an admin superuser must not be that owner.
// With -user the printed worker DSNs connect as that role (which
// sql/role.sql creates afterwards), with the password in
// FKROLLOUT_DEMO_ROLE_PASSWORD when set; the admin DSNs of the databases
// are printed too, for running sql/role.sql there.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
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
	owner := flag.String("owner", "", "role owning the demo's tables, created NOLOGIN when missing (empty: the admin user)")
	user := flag.String("user", "", "role the printed worker DSNs connect as (the worker's role of sql/role.sql; password from FKROLLOUT_DEMO_ROLE_PASSWORD); empty: the admin user")
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
	if err := run(ctx, os.Stdout, options{admin: *admin, prefix: *prefix, orphans: *orphans, owner: *owner, user: *user, password: os.Getenv("FKROLLOUT_DEMO_ROLE_PASSWORD")}); err != nil {
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
// cannot be NULL (delete) and one more, so the audit
// has both kinds of finding to report.
var orphanTargets = []string{"fk_workflow_stages_workflow_instance", "fk_vendor_master_workspace"}

type options struct {
	admin, prefix  string
	orphans        int
	owner          string
	user, password string
}

// roleName: what the demo accepts as a role name (no quoting surprises in
// the shell or in psql variables).
var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func run(ctx context.Context, out io.Writer, o options) error {
	for _, r := range []string{o.owner, o.user} {
		if r != "" && !roleName.MatchString(r) {
			return fmt.Errorf("role name %q: use lower-case letters, digits and _", r)
		}
	}
	if o.owner != "" {
		if err := ensureOwner(ctx, o.admin, o.owner); err != nil {
			return err
		}
	}
	for _, env := range []string{"staging", "production"} {
		dsn, err := demo.CreateDatabase(ctx, o.admin, o.prefix+"_"+env, true)
		if err != nil {
			return fmt.Errorf("create %s database: %w", env, err)
		}
		cfg, err := pgxpool.ParseConfig(dsn)
		if err != nil {
			return fmt.Errorf("%s: DSN does not parse", env)
		}
		if o.owner != "" {
			if err := grantPublic(ctx, dsn, o.owner); err != nil {
				return fmt.Errorf("%s: %w", env, err)
			}
			// Everything the demo creates belongs to the owner, as the
			// application's own migrations would make it.
			setRole := "SET ROLE " + pgx.Identifier{o.owner}.Sanitize()
			cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
				_, err := c.Exec(ctx, setRole)
				return err
			}
		}
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
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
			if env == "staging" && o.orphans > 0 {
				for _, fk := range orphanTargets {
					if err := demo.InjectOrphans(ctx, pool, fk, o.orphans); err != nil {
						return fmt.Errorf("inject orphans into %s: %w", fk, err)
					}
				}
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("%s: %w", env, err)
		}
		name := strings.ToUpper(env)
		worker := dsn
		if o.user != "" {
			if worker, err = dsnAs(dsn, o.user, o.password); err != nil {
				return err
			}
			fmt.Fprintf(out, "FKROLLOUT_DEMO_ADMIN_DSN_%s='%s'\n", name, dsn)
		}
		fmt.Fprintf(out, "FKROLLOUT_DSN_%s='%s'\n", name, worker)
	}
	return nil
}

// ensureOwner creates the table owner role when missing and refuses a
// superuser one: the worker's role is made a member of it.
func ensureOwner(ctx context.Context, admin, owner string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("table owner %s: connect to admin database: %w", owner, err)
	}
	defer conn.Close(context.Background())
	var super bool
	err = conn.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = $1`, owner).Scan(&super)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{owner}.Sanitize()+" NOLOGIN"); err != nil {
			return fmt.Errorf("create table owner role %s: %w", owner, err)
		}
	case err != nil:
		return fmt.Errorf("table owner %s: %w", owner, err)
	case super:
		return fmt.Errorf("table owner %s is a superuser: the worker's role would be one through membership; pick another -owner", owner)
	}
	return nil
}

// grantPublic gives owner what an owner that creates its tables in public
// has: USAGE and CREATE there (CREATE INDEX checks CREATE on the schema).
func grantPublic(ctx context.Context, dsn, owner string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect as admin: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "GRANT USAGE, CREATE ON SCHEMA public TO "+pgx.Identifier{owner}.Sanitize()); err != nil {
		return fmt.Errorf("grant schema public to %s: %w", owner, err)
	}
	return nil
}

// dsnAs is dsn connecting as user (with password when not empty).
func dsnAs(dsn, user, password string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("worker DSN: the admin DSN does not parse as a URL")
		}
		u.User = url.User(user)
		if password != "" {
			u.User = url.UserPassword(user, password)
		}
		q := u.Query()
		q.Del("password")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	quote := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace
	kv := regexp.MustCompile(`(?i)(^|\s)(user|password)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`).ReplaceAllString(dsn, "")
	kv += " user='" + quote(user) + "'"
	if password != "" {
		kv += " password='" + quote(password) + "'"
	}
	return strings.TrimSpace(kv), nil
}
