// Package pgtest gives each test its own PostgreSQL database, created from
// the admin DSN in FKROLLOUT_TEST_PG (default: the local server, user
// postgres) and dropped when the test ends. A missing server is a test
// failure, not a skip: CI starts PostgreSQL before the tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultAdminDSN is used when FKROLLOUT_TEST_PG is unset.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDSN returns the DSN of the maintenance database tests create theirs from.
func AdminDSN() string {
	if v := os.Getenv("FKROLLOUT_TEST_PG"); v != "" {
		return v
	}
	return DefaultAdminDSN
}

// DB is a fresh database for one test.
type DB struct {
	Name string
	DSN  string
	Pool *pgxpool.Pool
}

// New creates a database named after the test, connects a pool to it and
// registers cleanup that closes the pool and drops the database (WITH FORCE).
func New(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminDSN())
	if err != nil {
		t.Fatalf("pgtest: connect to %s (set FKROLLOUT_TEST_PG; .ci/run starts PostgreSQL): %v", redact(AdminDSN()), err)
	}
	defer admin.Close(context.Background())

	name := "fkr_" + sanitize(t.Name()) + "_" + randHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	dsn := withDatabase(t, AdminDSN(), name)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", name, err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, AdminDSN())
		if err != nil {
			t.Errorf("pgtest: reconnect to drop %s: %v", name, err)
			return
		}
		defer admin.Close(context.Background())
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return &DB{Name: name, DSN: dsn, Pool: pool}
}

// Exec runs SQL (several statements allowed) on the test database or fails the test.
func (d *DB) Exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := d.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("pgtest: exec %q: %v", abbreviate(sql), err)
	}
}

// Count runs a SELECT returning one integer or fails the test.
func (d *DB) Count(t testing.TB, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := d.Pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("pgtest: count %q: %v", abbreviate(sql), err)
	}
	return n
}

func withDatabase(t testing.TB, dsn, db string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pgtest: parse admin DSN: %v", err)
	}
	// Rebuild as a URL so every consumer (pgx, pg_dump) understands it.
	u := "postgres://" + cfg.User
	if cfg.Password != "" {
		u += ":" + cfg.Password
	}
	host := cfg.Host
	if strings.HasPrefix(host, "/") {
		return u + "@/" + db + "?host=" + host + "&port=" + itoa(int(cfg.Port)) + "&sslmode=disable"
	}
	return u + "@" + host + ":" + itoa(int(cfg.Port)) + "/" + db + "?sslmode=disable"
}

func itoa(n int) string {
	if n == 0 {
		return "5432"
	}
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

func sanitize(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if len(out) > 40 {
		out = out[:40]
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func abbreviate(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func redact(dsn string) string {
	if cfg, err := pgx.ParseConfig(dsn); err == nil {
		return cfg.User + "@" + cfg.Host
	}
	return "(unparseable DSN)"
}
