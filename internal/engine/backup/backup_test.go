package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

const fixture = `
CREATE SCHEMA "Odd Schema";
CREATE TABLE parent (id int PRIMARY KEY, name text NOT NULL CHECK (name <> ''));
CREATE TABLE child (id int PRIMARY KEY, parent_id int, qty int);
ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent(id) NOT VALID;
ALTER TABLE child ADD CONSTRAINT child_qty_positive CHECK (qty > 0);
CREATE TABLE "Odd Schema"."Mixed Case" ("Id" int PRIMARY KEY, v text);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 30) g;
INSERT INTO child SELECT g, 1 + g % 30, g FROM generate_series(1, 250) g;
INSERT INTO "Odd Schema"."Mixed Case" VALUES (1, 'a'), (2, 'b');
`

func TestRunFullAndRestore(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t)
	src.Exec(t, fixture)
	dir := filepath.Join(t.TempDir(), "backups")

	res, err := Run(ctx, src.Pool, Options{DSN: src.DSN, Dir: dir, Label: "staging-before-fks", Full: true})
	require.NoError(t, err)
	require.Len(t, res.Artifacts, 3)
	kinds := map[string]Artifact{}
	nameRe := regexp.MustCompile(`^staging-before-fks_\d{8}_\d{6}_(schema\.dump|constraints\.json|full\.dump)$`)
	for _, a := range res.Artifacts {
		kinds[a.Kind] = a
		assert.Regexp(t, nameRe, filepath.Base(a.Path))
		b, err := os.ReadFile(a.Path)
		require.NoError(t, err)
		sum := sha256.Sum256(b)
		assert.Equal(t, hex.EncodeToString(sum[:]), a.SHA256, a.Kind)
		assert.Equal(t, int64(len(b)), a.SizeBytes, a.Kind)
		assert.Positive(t, a.Entries, a.Kind)
		assert.NoError(t, Verify(ctx, a, ""), a.Kind)
	}
	require.Contains(t, kinds, KindSchema)
	require.Contains(t, kinds, KindData)
	require.Contains(t, kinds, KindConstraints)
	// No temp files left behind.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 3)
	// The data dump has more TOC entries than the schema dump (TABLE DATA).
	assert.Greater(t, kinds[KindData].Entries, kinds[KindSchema].Entries)

	// Constraint snapshot has the FK and CHECK with definitions and state.
	b, err := os.ReadFile(kinds[KindConstraints].Path)
	require.NoError(t, err)
	var cs []Constraint
	require.NoError(t, json.Unmarshal(b, &cs))
	assert.Equal(t, res.Constraints, len(cs))
	assert.Equal(t, len(cs), kinds[KindConstraints].Entries)
	byName := map[string]Constraint{}
	for _, c := range cs {
		byName[c.Schema+"."+c.Table+"."+c.Name] = c
	}
	assert.Equal(t, Constraint{Schema: "public", Table: "child", Name: "child_parent_fk", Type: "foreign_key",
		Definition: "FOREIGN KEY (parent_id) REFERENCES parent(id) NOT VALID", Validated: false}, byName["public.child.child_parent_fk"])
	assert.Equal(t, Constraint{Schema: "public", Table: "child", Name: "child_qty_positive", Type: "check",
		Definition: "CHECK (qty > 0)", Validated: true}, byName["public.child.child_qty_positive"])
	assert.Equal(t, "primary_key", byName["Odd Schema.Mixed Case.Mixed Case_pkey"].Type)

	// Tampering is detected.
	tampered := kinds[KindSchema]
	tampered.SHA256 = strings.Repeat("0", 64)
	assert.ErrorContains(t, Verify(ctx, tampered, ""), "sha256")

	// The schema dump restores into an empty database: tables, constraints,
	// no rows.
	schemaDB := pgtest.New(t)
	pgRestore(t, schemaDB.DSN, kinds[KindSchema].Path)
	assert.Zero(t, schemaDB.Count(t, `SELECT count(*) FROM child`))
	assert.Zero(t, schemaDB.Count(t, `SELECT count(*) FROM "Odd Schema"."Mixed Case"`))
	assert.Equal(t, int64(1), schemaDB.Count(t, `SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_fk' AND NOT convalidated`))

	// The full dump round-trips row counts.
	fullDB := pgtest.New(t)
	pgRestore(t, fullDB.DSN, kinds[KindData].Path)
	for _, table := range []string{"parent", "child", `"Odd Schema"."Mixed Case"`} {
		assert.Equal(t, src.Count(t, "SELECT count(*) FROM "+table), fullDB.Count(t, "SELECT count(*) FROM "+table), table)
	}
	assert.Equal(t, int64(250), fullDB.Count(t, `SELECT count(*) FROM child`))
}

func pgRestore(t *testing.T, dsn, path string) {
	t.Helper()
	out, err := exec.Command("pg_restore", "--no-owner", "--exit-on-error", "--dbname="+dsn, path).CombinedOutput()
	require.NoError(t, err, "pg_restore: %s", out)
}

func TestRunSchemasAndSchemaOnly(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t)
	src.Exec(t, fixture)
	res, err := Run(ctx, src.Pool, Options{DSN: src.DSN, Dir: t.TempDir(), Label: "odd", Schemas: []string{"Odd Schema"}})
	require.NoError(t, err)
	require.Len(t, res.Artifacts, 2, "no data dump without Full")
	assert.Equal(t, 1, res.Constraints, "only the Odd Schema primary key")

	db := pgtest.New(t)
	pgRestore(t, db.DSN, res.Artifacts[0].Path)
	assert.Equal(t, int64(1), db.Count(t, `SELECT count(*) FROM pg_tables WHERE schemaname = 'Odd Schema'`))
	assert.Zero(t, db.Count(t, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`))
}

func TestErrorsDoNotLeakSecrets(t *testing.T) {
	ctx := context.Background()
	db := pgtest.New(t)
	const secret = "s3cr3t-Hunter2"
	cases := []struct {
		name string
		dsn  string
	}{
		{"missing database url", "postgres://postgres:" + secret + "@127.0.0.1:5432/no_such_db_fkr?sslmode=disable"},
		{"refused port url", "postgres://postgres:" + secret + "@127.0.0.1:1/x?sslmode=disable"},
		{"missing database kv", "host=127.0.0.1 user=postgres password='" + secret + "' dbname=no_such_db_fkr sslmode=disable"},
		{"bad libpq option", "postgres://postgres:" + secret + "@127.0.0.1:5432/x?bogus_option=" + secret},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := Run(ctx, db.Pool, Options{DSN: tc.dsn, Dir: dir, Label: "leak"})
			require.Error(t, err)
			t.Log(err)
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, err.Error(), tc.dsn)
			assert.Contains(t, err.Error(), "pg_dump")
			entries, _ := os.ReadDir(dir)
			assert.Empty(t, entries, "partial files removed")
		})
	}
}

func TestPasswordNotInArgv(t *testing.T) {
	cases := []struct {
		dsn, password, dbname string
	}{
		{"postgres://u:p%40ss@h:5433/db?sslmode=require&pool_max_conns=4", "p@ss", "postgres://u@h:5433/db?sslmode=require"},
		{"postgres://u@h/db?password=qwerty", "qwerty", "postgres://u@h/db"},
		{"host=h user=u password='it\\'s x' dbname=db", "it's x", "host=h user=u dbname=db"},
		{"host=h password=plain dbname=db", "plain", "host=h dbname=db"},
		{"host=h dbname=db", "", "host=h dbname=db"},
	}
	for _, tc := range cases {
		c, err := newConnArgs(tc.dsn)
		require.NoError(t, err)
		assert.Equal(t, tc.password, c.password, tc.dsn)
		assert.Equal(t, tc.dbname, c.dbname, tc.dsn)
		cmd := c.command(context.Background(), "pg_dump", "--schema-only")
		if tc.password != "" {
			assert.NotContains(t, strings.Join(cmd.Args, " "), tc.password)
			assert.Contains(t, cmd.Env, "PGPASSWORD="+tc.password)
			assert.Equal(t, "*** said no", c.redact(tc.password+" said no"))
		}
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	db := pgtest.New(t)
	for _, o := range []Options{
		{Dir: t.TempDir(), Label: "x"},
		{DSN: db.DSN, Label: "x"},
		{DSN: db.DSN, Dir: t.TempDir(), Label: "../etc"},
		{DSN: db.DSN, Dir: t.TempDir(), Label: "x", PgDump: "/nonexistent/pg_dump"},
	} {
		_, err := Run(context.Background(), db.Pool, o)
		assert.Error(t, err)
		if err != nil {
			assert.NotContains(t, err.Error(), db.DSN)
		}
	}
}

// TestPasswordEchoIsRedacted: the local server trusts every connection, so
// no real "password authentication failed" can be provoked; a stand-in
// pg_dump that echoes its environment password and argv to stderr (the
// worst a client could do) proves the password reached it only through
// PGPASSWORD and that Run's error redacts it.
func TestPasswordEchoIsRedacted(t *testing.T) {
	db := pgtest.New(t)
	fake := filepath.Join(t.TempDir(), "pg_dump")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho \"FATAL: password authentication failed, password=$PGPASSWORD args=$*\" >&2\nexit 1\n"), 0o755))
	const secret = "wr0ng-Passw0rd"
	dsn := "postgres://postgres:" + secret + "@127.0.0.1:5432/" + db.Name + "?sslmode=disable"
	_, err := Run(context.Background(), db.Pool, Options{DSN: dsn, Dir: t.TempDir(), Label: "x", PgDump: fake})
	require.Error(t, err)
	t.Log(err)
	assert.Contains(t, err.Error(), "password authentication failed, password=***")
	assert.Contains(t, err.Error(), "--dbname=postgres://postgres@127.0.0.1:5432/")
	assert.NotContains(t, err.Error(), secret)
}

// A retried backup of the same run finds the completed one by its manifest
// and reuses it, each file verified; another run, a changed file or other
// options dump again.
func TestRetryReusesCompletedBackup(t *testing.T) {
	ctx := context.Background()
	src := pgtest.New(t)
	src.Exec(t, fixture)
	dir := filepath.Join(t.TempDir(), "backups")
	opts := Options{DSN: src.DSN, Dir: dir, Label: "fkr-1-production", RunKey: "run-1"}

	first, err := Run(ctx, src.Pool, opts)
	require.NoError(t, err)
	require.False(t, first.Reused)
	require.FileExists(t, ManifestPath(dir, opts.Label))
	files := func() []string {
		es, err := os.ReadDir(dir)
		require.NoError(t, err)
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	before := files()

	cases := []struct {
		name   string
		change func(o *Options)
		spoil  bool
		reused bool
	}{
		{name: "same run: reused", change: func(*Options) {}, reused: true},
		{name: "another run: dumped again", change: func(o *Options) { o.RunKey = "run-2" }},
		{name: "other options: dumped again", change: func(o *Options) { o.Full = true }},
		{name: "a file changed since: dumped again", change: func(*Options) {}, spoil: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Every case starts from the first run's completed backup.
			first, err := Run(ctx, src.Pool, opts)
			require.NoError(t, err)
			if tc.spoil {
				f, err := os.OpenFile(first.Artifacts[0].Path, os.O_APPEND|os.O_WRONLY, 0)
				require.NoError(t, err)
				_, err = f.WriteString("x")
				require.NoError(t, err)
				require.NoError(t, f.Close())
			}
			o := opts
			tc.change(&o)
			again, err := Run(ctx, src.Pool, o)
			require.NoError(t, err)
			assert.Equal(t, tc.reused, again.Reused)
			if tc.reused {
				assert.Equal(t, first.Artifacts, again.Artifacts, "the same files, as the manifest recorded them")
				assert.Equal(t, before, files(), "nothing new was written")
			}
			for _, a := range again.Artifacts {
				assert.NoError(t, Verify(ctx, a, ""), a.Path)
			}
		})
	}
}
