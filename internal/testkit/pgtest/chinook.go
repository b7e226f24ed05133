package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Chinook 1.4.5 (../shared/datasets/chinook/chinook.sql beside the
// repository) is a real public schema: 11 tables, about 15k rows and 11
// foreign keys, all ON DELETE NO ACTION with PostgreSQL's default names.
// Tests load it into their own database to roll foreign keys out and back
// on data nobody shaped for fkrollout.

// chinookRel is where the dataset lives, relative to the repository root.
var chinookRel = filepath.Join("..", "shared", "datasets", "chinook", "chinook.sql")

// chinookConnect is the meta-command that ends the file's preamble (DROP
// and CREATE DATABASE chinook); everything after it is schema and data.
const chinookConnect = `\c chinook;`

// ChinookTables are the dataset's tables, all in schema public.
var ChinookTables = []string{"album", "artist", "customer", "employee", "genre", "invoice",
	"invoice_line", "media_type", "playlist", "playlist_track", "track"}

// repoRoot returns the directory holding go.mod, found by walking up from
// the working directory (a package directory under go test).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("pgtest: working directory: %v", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("pgtest: no go.mod in %s or any parent", dir)
		}
	}
}

// ChinookPath returns the path of chinook.sql, ../shared/datasets/chinook/
// beside the repository root, or fails the test: the file is part of the
// test setup (CI clones the repository with ../shared beside it).
func ChinookPath(t testing.TB) string {
	t.Helper()
	p := filepath.Clean(filepath.Join(repoRoot(t), chinookRel))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("pgtest: Chinook dataset missing: expected %s (clone the shared datasets beside the repository): %v", p, err)
	}
	return p
}

// ChinookMigration returns a migration that recreates Chinook's 11 foreign
// keys as a tool writes it: "prisma" (quoted, named, explicit NO ACTION)
// or "rails" (unnamed, implicit referenced columns); both give PostgreSQL's
// default names, so the result matches the original.
func ChinookMigration(t testing.TB, flavour string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "internal", "testkit", "pgtest", "testdata", "chinook", flavour+".sql")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("pgtest: Chinook migration %q: %v", flavour, err)
	}
	return string(b)
}

// LoadChinook loads Chinook's schema and data into db, the test's own
// database (the file's DROP/CREATE DATABASE preamble is skipped). One
// simple-protocol Exec of the whole script takes about 0.22 s on the
// 2-vCPU dev VM (psql -f: 0.26 s), and needs no psql.
func LoadChinook(t testing.TB, db *DB) {
	t.Helper()
	script, err := chinookScript(ChinookPath(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Without arguments pgx sends the script as one simple-protocol query.
	if _, err := db.Pool.Exec(ctx, script); err != nil {
		t.Fatalf("pgtest: load Chinook into %s: %v", db.Name, err)
	}
}

// chinookScript returns the SQL after the \c line, refusing any other psql
// meta-command (the server would reject it anyway, less clearly).
func chinookScript(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read Chinook: %w", err)
	}
	_, body, ok := bytes.Cut(b, []byte("\n"+chinookConnect+"\n"))
	if !ok {
		return "", fmt.Errorf("%s: no %q line: not the Chinook 1.4.5 PostgreSQL script", path, chinookConnect)
	}
	for i, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, `\`) {
			return "", fmt.Errorf("%s: psql meta-command after %s (body line %d): %q", path, chinookConnect, i+1, line)
		}
	}
	return string(body), nil
}

// ChinookFK is one live foreign key.
type ChinookFK struct {
	Schema, Table, Name string
	// Def is pg_get_constraintdef, e.g. "FOREIGN KEY (album_id) REFERENCES album(album_id)".
	Def string
}

// ChinookForeignKeys reads every declared foreign key of db (partition
// copies excluded), ordered by schema, table and name, so a test can
// compare them before and after a rollout.
func ChinookForeignKeys(t testing.TB, db *DB) []ChinookFK {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `
		SELECT n.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid)
		FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE k.contype = 'f' AND k.conparentid = 0
		ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatalf("pgtest: read foreign keys: %v", err)
	}
	fks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChinookFK, error) {
		var fk ChinookFK
		return fk, r.Scan(&fk.Schema, &fk.Table, &fk.Name, &fk.Def)
	})
	if err != nil {
		t.Fatalf("pgtest: read foreign keys: %v", err)
	}
	return fks
}

// DropForeignKeys drops every foreign key declared in schema public, in
// one transaction.
func DropForeignKeys(t testing.TB, db *DB) {
	t.Helper()
	db.Exec(t, `
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT k.conrelid::regclass AS rel, k.conname FROM pg_constraint k
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND k.contype = 'f' AND k.conparentid = 0
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.rel, r.conname);
    END LOOP;
END
$$`)
}

// Checksum is a table's row count and the md5 of its rows' text, sorted.
type Checksum struct {
	Rows int64
	MD5  string
}

// TableChecksums returns a Checksum per table (names as given, optionally
// schema-qualified: "track", "public.track"); with no names, of every
// table in schema public. Equal checksums mean the same rows.
func TableChecksums(t testing.TB, db *DB, tables ...string) map[string]Checksum {
	t.Helper()
	ctx := context.Background()
	if len(tables) == 0 {
		tables = publicTables(t, db)
	}
	out := make(map[string]Checksum, len(tables))
	for _, name := range tables {
		var c Checksum
		q := "SELECT count(*), coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), md5('')) FROM " +
			pgx.Identifier(strings.Split(name, ".")).Sanitize() + " x"
		if err := db.Pool.QueryRow(ctx, q).Scan(&c.Rows, &c.MD5); err != nil {
			t.Fatalf("pgtest: checksum %s: %v", name, err)
		}
		out[name] = c
	}
	return out
}

func publicTables(t testing.TB, db *DB) []string {
	t.Helper()
	var names []string
	err := db.Pool.QueryRow(context.Background(),
		`SELECT coalesce(array_agg(tablename::text ORDER BY tablename), '{}') FROM pg_tables WHERE schemaname = 'public'`).Scan(&names)
	if err != nil {
		t.Fatalf("pgtest: list tables: %v", err)
	}
	return names
}

// DumpForeignKeySQL runs the real pg_dump (--schema-only
// --section=post-data) against db and returns its foreign key statements
// exactly as written, e.g.
//
//	ALTER TABLE ONLY public.track
//	    ADD CONSTRAINT track_album_id_fkey FOREIGN KEY (album_id) REFERENCES public.album(album_id);
//
// in pg_dump's order, separated by blank lines and ending in a newline;
// "" when there are none.
func DumpForeignKeySQL(t testing.TB, db *DB) string {
	t.Helper()
	out, err := pgDump(db.DSN, "--schema-only", "--section=post-data")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	stmts := foreignKeyStatements(out)
	if len(stmts) == 0 {
		return ""
	}
	return strings.Join(stmts, "\n\n") + "\n"
}

// foreignKeyStatements picks the statements of the "Type: FK CONSTRAINT"
// entries from pg_dump's plain output, where each object follows a header:
//
//	--
//	-- Name: track track_album_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: postgres
//	--
func foreignKeyStatements(dump string) []string {
	var out []string
	entries := strings.Split(dump, "\n--\n-- Name: ")
	for _, e := range entries[1:] {
		header, body, ok := strings.Cut(e, "\n--\n")
		if !ok || !strings.Contains(header, "; Type: FK CONSTRAINT; ") {
			continue
		}
		// The statement ends where the next comment starts (the last one
		// is followed by "-- PostgreSQL database dump complete").
		body, _, _ = strings.Cut(body, "\n--")
		if s := strings.TrimSpace(body); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pgDump runs pg_dump on dsn (a URL, as New builds it) with the password,
// if any, in PGPASSWORD rather than on the command line.
func pgDump(dsn string, args ...string) (string, error) {
	bin, err := pgDumpPath()
	if err != nil {
		return "", err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("pg_dump: test DSN is not a URL")
	}
	env := os.Environ()
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			env = append(env, "PGPASSWORD="+p)
			u.User = url.User(u.User.Username())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--dbname="+u.String())...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// pgDumpPath finds pg_dump on PATH, else the newest under
// /usr/lib/postgresql/*/bin (Debian keeps versioned clients there).
func pgDumpPath() (string, error) {
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	if len(found) == 0 {
		return "", errors.New("pg_dump not found on PATH or under /usr/lib/postgresql/*/bin (install the PostgreSQL client)")
	}
	slices.SortFunc(found, func(a, b string) int { return pgMajor(b) - pgMajor(a) })
	return found[0], nil
}

// pgMajor reads the version directory of /usr/lib/postgresql/<v>/bin/pg_dump.
func pgMajor(path string) int {
	v := filepath.Base(filepath.Dir(filepath.Dir(path)))
	n := 0
	for _, r := range v {
		if r < '0' || r > '9' {
			return 0
		}
		n = n*10 + int(r-'0')
	}
	return n
}

// QuarantineCounts counts rollout's rows in fkrollout.quarantine per
// "schema.table action" (action: delete, set_null), so tests can compare
// them with the rows a remediation removed or changed.
func QuarantineCounts(t testing.TB, db *DB, rollout string) map[string]int64 {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT table_schema || '.' || table_name || ' ' || action, count(*)
		FROM fkrollout.quarantine WHERE rollout_id = $1 GROUP BY 1`, rollout)
	if err != nil {
		t.Fatalf("pgtest: count quarantine of %s: %v", rollout, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatalf("pgtest: count quarantine of %s: %v", rollout, err)
		}
		out[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("pgtest: count quarantine of %s: %v", rollout, err)
	}
	return out
}
