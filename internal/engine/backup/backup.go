// Package backup takes the backup required before a migration, in staging
// and in production, and proves it is usable: a
// schema-only pg_dump, a JSON snapshot of every constraint definition, and
// optionally a full data dump, each in custom format, listed back with
// pg_restore --list, hashed and written atomically.
//
// The DSN never reaches argv, logs or errors: the password goes to pg_dump
// through PGPASSWORD and every error text is redacted.
package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Options says what to back up and where. It carries the DSN, so it is for
// activities only, never workflow input or history (DSN is json:"-").
type Options struct {
	// DSN of the database to dump (URL or key=value form). Never logged.
	DSN string `json:"-"`
	// Dir is the output directory (created 0700 when missing).
	Dir string `json:"dir"`
	// Label prefixes every file name: <label>_<YYYYMMDD_HHMMSS>_<kind>.<ext>.
	Label string `json:"label"`
	// Full adds a full custom-format data dump.
	Full bool `json:"full"`
	// Schemas restricts the dumps and the constraint snapshot (default all).
	Schemas []string `json:"schemas,omitempty"`
	// PgDump and PgRestore are binary paths (default: from PATH).
	PgDump    string `json:"pg_dump,omitempty"`
	PgRestore string `json:"pg_restore,omitempty"`
	// RunKey names the run the backup is for (a workflow run id). With it,
	// a completed backup records a manifest, and Run called again with the
	// same key, label and options (a retried activity) returns that backup,
	// each file verified against the manifest, instead of dumping again.
	RunKey string `json:"run_key,omitempty"`
}

// Artifact kinds.
const (
	KindSchema      = "schema"
	KindData        = "data"
	KindConstraints = "constraints"
)

// Artifact is one verified file.
type Artifact struct {
	Kind      string `json:"kind"`
	Path      string `json:"path"`
	SizeBytes int64  `json:"size_bytes"`
	SHA256    string `json:"sha256"`
	// Entries is the number of TOC entries (pg_restore --list) for a dump,
	// or the number of constraints in the snapshot.
	Entries int `json:"entries"`
}

// Result lists what Run wrote.
type Result struct {
	Artifacts   []Artifact `json:"artifacts"`
	Constraints int        `json:"constraints"`
	DurationMS  int64      `json:"duration_ms"`
	// Reused: the backup was completed by an earlier attempt of the same
	// run and verified against its manifest; nothing was dumped again.
	Reused bool `json:"reused,omitempty"`
}

// manifest is what a completed backup records next to its files, so a
// retry can find and verify it (ManifestPath).
type manifest struct {
	RunKey  string   `json:"run_key"`
	Label   string   `json:"label"`
	Full    bool     `json:"full"`
	Schemas []string `json:"schemas,omitempty"`
	Result  Result   `json:"result"`
}

// ManifestPath is where a backup with this label records its manifest.
func ManifestPath(dir, label string) string {
	return filepath.Join(dir, label+".manifest.json")
}

// Constraint is one entry of the constraint snapshot file.
type Constraint struct {
	Schema     string `json:"schema"`
	Table      string `json:"table"`
	Name       string `json:"name"`
	Type       string `json:"type"` // foreign_key, check, primary_key, unique, exclusion, trigger
	Definition string `json:"definition"`
	Validated  bool   `json:"validated"`
}

var labelRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Run writes the schema dump, the constraint snapshot (through pool) and,
// when o.Full, the data dump, verifying each. A failure removes the partial
// file; completed artifacts stay.
func Run(ctx context.Context, pool *pgxpool.Pool, o Options) (Result, error) {
	start := time.Now()
	if o.DSN == "" {
		return Result{}, errors.New("backup: DSN is required")
	}
	if o.Dir == "" {
		return Result{}, errors.New("backup: output directory is required")
	}
	if !labelRe.MatchString(o.Label) {
		return Result{}, fmt.Errorf("backup: label %q must be 1-100 of letters, digits, '.', '_', '-'", o.Label)
	}
	conn, err := newConnArgs(o.DSN)
	if err != nil {
		return Result{}, err
	}
	pgDump, err := binary(o.PgDump, "pg_dump")
	if err != nil {
		return Result{}, err
	}
	pgRestore, err := binary(o.PgRestore, "pg_restore")
	if err != nil {
		return Result{}, err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("backup: create %s: %w", o.Dir, err)
	}
	if res, ok := reuse(ctx, o, pgRestore); ok {
		return res, nil
	}
	prefix := filepath.Join(o.Dir, o.Label+"_"+start.UTC().Format("20060102_150405"))

	var res Result
	schemaArgs := []string{"--format=custom", "--schema-only"}
	a, err := dump(ctx, conn, pgDump, pgRestore, KindSchema, prefix+"_schema.dump", append(schemaArgs, schemaFlags(o.Schemas)...))
	if err != nil {
		return res, err
	}
	res.Artifacts = append(res.Artifacts, a)

	a, n, err := snapshotConstraints(ctx, pool, o.Schemas, prefix+"_constraints.json")
	if err != nil {
		return res, err
	}
	res.Artifacts = append(res.Artifacts, a)
	res.Constraints = n

	if o.Full {
		a, err := dump(ctx, conn, pgDump, pgRestore, KindData, prefix+"_full.dump", append([]string{"--format=custom"}, schemaFlags(o.Schemas)...))
		if err != nil {
			return res, err
		}
		res.Artifacts = append(res.Artifacts, a)
	}
	res.DurationMS = time.Since(start).Milliseconds()
	if o.RunKey != "" {
		if err := writeManifest(o, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// reuse returns the backup an earlier attempt of the same run completed,
// when its manifest matches o and every file verifies (size, sha256, TOC
// entries). Anything else (no manifest, another run, a missing or changed
// file) means a fresh backup.
func reuse(ctx context.Context, o Options, pgRestore string) (Result, bool) {
	if o.RunKey == "" {
		return Result{}, false
	}
	b, err := os.ReadFile(ManifestPath(o.Dir, o.Label))
	if err != nil {
		return Result{}, false
	}
	var m manifest
	if json.Unmarshal(b, &m) != nil || m.RunKey != o.RunKey || m.Label != o.Label || m.Full != o.Full ||
		strings.Join(m.Schemas, "\x00") != strings.Join(o.Schemas, "\x00") || len(m.Result.Artifacts) == 0 {
		return Result{}, false
	}
	for _, a := range m.Result.Artifacts {
		if filepath.Dir(a.Path) != filepath.Clean(o.Dir) || Verify(ctx, a, pgRestore) != nil {
			return Result{}, false
		}
	}
	m.Result.Reused = true
	return m.Result, true
}

// writeManifest records a completed backup atomically (temp file, rename).
func writeManifest(o Options, res Result) error {
	b, err := json.MarshalIndent(manifest{RunKey: o.RunKey, Label: o.Label, Full: o.Full, Schemas: o.Schemas, Result: res}, "", "  ")
	if err != nil {
		return fmt.Errorf("backup manifest: %w", err)
	}
	path := ManifestPath(o.Dir, o.Label)
	tmp, err := os.CreateTemp(o.Dir, ".tmp-manifest-*")
	if err != nil {
		return fmt.Errorf("backup manifest: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("backup manifest: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("backup manifest: %w", err)
	}
	_ = tmp.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("backup manifest: %w", err)
	}
	return nil
}

// Verify re-hashes the file and checks its size, then lists a dump with
// pg_restore --list (or parses a constraint snapshot) and checks the entry
// count.
func Verify(ctx context.Context, a Artifact, pgRestore string) error {
	sum, size, err := hashFile(a.Path)
	if err != nil {
		return fmt.Errorf("verify %s: %w", a.Path, err)
	}
	if size != a.SizeBytes {
		return fmt.Errorf("verify %s: size %d, recorded %d", a.Path, size, a.SizeBytes)
	}
	if sum != a.SHA256 {
		return fmt.Errorf("verify %s: sha256 %s, recorded %s", a.Path, sum, a.SHA256)
	}
	var n int
	switch a.Kind {
	case KindSchema, KindData:
		bin, err := binary(pgRestore, "pg_restore")
		if err != nil {
			return err
		}
		if n, err = listEntries(ctx, bin, a.Path); err != nil {
			return fmt.Errorf("verify %s: %w", a.Path, err)
		}
	case KindConstraints:
		b, err := os.ReadFile(a.Path)
		if err != nil {
			return fmt.Errorf("verify %s: %w", a.Path, err)
		}
		var cs []Constraint
		if err := json.Unmarshal(b, &cs); err != nil {
			return fmt.Errorf("verify %s: constraint snapshot: %w", a.Path, err)
		}
		n = len(cs)
	default:
		return fmt.Errorf("verify %s: unknown artifact kind %q", a.Path, a.Kind)
	}
	if n != a.Entries {
		return fmt.Errorf("verify %s: %d entries, recorded %d", a.Path, n, a.Entries)
	}
	return nil
}

func schemaFlags(schemas []string) []string {
	var f []string
	for _, s := range schemas {
		// pg_dump treats the value as a pattern; quoting makes it literal
		// (case and special characters preserved).
		f = append(f, "--schema="+pgx.Identifier{s}.Sanitize())
	}
	return f
}

func binary(path, name string) (string, error) {
	if path != "" {
		return path, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("backup: %s not found in PATH (install the PostgreSQL client of the server's major version on the worker host and put it first in PATH): %w", name, err)
	}
	return p, nil
}

// connArgs is how pg_dump is told where to connect: a password-free DSN
// for --dbname and the password in the environment.
type connArgs struct {
	dbname   string
	password string
	secrets  []string // strings that must never appear in output
}

// pgxOnlyParams are understood by pgx but rejected by libpq.
var pgxOnlyParams = []string{"statement_cache_capacity", "description_cache_capacity", "default_query_exec_mode", "min_read_buffer_size"}

var kvPassword = regexp.MustCompile(`(?i)(^|\s)password\s*=\s*('(?:[^'\\]|\\.)*'|\S*)`)

func newConnArgs(dsn string) (connArgs, error) {
	c := connArgs{secrets: []string{dsn}}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url's error quotes the input; do not wrap it.
			return connArgs{}, errors.New("backup: DSN is not a valid postgres:// URL")
		}
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				c.password = p
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if p := q.Get("password"); p != "" {
			c.password = p
			q.Del("password")
		}
		for k := range q {
			if strings.HasPrefix(k, "pool_") {
				q.Del(k)
			}
		}
		for _, k := range pgxOnlyParams {
			q.Del(k)
		}
		u.RawQuery = q.Encode()
		c.dbname = u.String()
	} else {
		if m := kvPassword.FindStringSubmatch(dsn); m != nil {
			p := m[2]
			if strings.HasPrefix(p, "'") {
				p = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(strings.Trim(p, "'"))
			}
			c.password = p
		}
		c.dbname = strings.TrimSpace(kvPassword.ReplaceAllString(dsn, ""))
	}
	if c.password != "" {
		c.secrets = append(c.secrets, c.password, url.QueryEscape(c.password), url.PathEscape(c.password))
	}
	return c, nil
}

// command builds the exec.Cmd with the password in PGPASSWORD, not argv.
func (c connArgs) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, append(args, "--no-password", "--dbname="+c.dbname)...)
	env := make([]string, 0, len(os.Environ())+1)
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PGPASSWORD=") {
			env = append(env, e)
		}
	}
	if c.password != "" {
		env = append(env, "PGPASSWORD="+c.password)
	}
	cmd.Env = env
	return cmd
}

// redact replaces every secret in s.
func (c connArgs) redact(s string) string {
	for _, sec := range c.secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// dump runs pg_dump into a temp file next to path, lists it, hashes it and
// renames it into place.
func dump(ctx context.Context, c connArgs, pgDump, pgRestore, kind, path string, args []string) (Artifact, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return Artifact{}, fmt.Errorf("backup %s: %w", kind, err)
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmpName)
		}
	}()
	var stderr bytes.Buffer
	cmd := c.command(ctx, pgDump, append(args, "--file="+tmpName)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return Artifact{}, fmt.Errorf("backup %s: pg_dump: %s: %s", kind, c.redact(err.Error()), c.redact(strings.TrimSpace(stderr.String())))
	}
	if err := syncFile(tmpName); err != nil {
		return Artifact{}, fmt.Errorf("backup %s: %w", kind, err)
	}
	n, err := listEntries(ctx, pgRestore, tmpName)
	if err != nil {
		return Artifact{}, fmt.Errorf("backup %s: %w", kind, err)
	}
	a, err := finish(tmpName, path, kind, n)
	if err != nil {
		return Artifact{}, err
	}
	ok = true
	return a, nil
}

func finish(tmpName, path, kind string, entries int) (Artifact, error) {
	sum, size, err := hashFile(tmpName)
	if err != nil {
		return Artifact{}, fmt.Errorf("backup %s: %w", kind, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return Artifact{}, fmt.Errorf("backup %s: %w", kind, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync() // persist the rename
		_ = d.Close()
	}
	return Artifact{Kind: kind, Path: path, SizeBytes: size, SHA256: sum, Entries: entries}, nil
}

// listEntries counts the TOC entries pg_restore --list prints (lines that
// are not comments). A dump with none is not a usable backup.
func listEntries(ctx context.Context, pgRestore, path string) (int, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, pgRestore, "--list", path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("pg_restore --list: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, ";") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("pg_restore --list: %w", err)
	}
	if n == 0 {
		return 0, errors.New("pg_restore --list: no TOC entries, the dump is empty")
	}
	return n, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

var constraintTypes = map[string]string{
	"f": "foreign_key", "c": "check", "p": "primary_key", "u": "unique", "x": "exclusion", "t": "trigger",
}

// snapshotConstraints writes every table constraint's definition as JSON.
func snapshotConstraints(ctx context.Context, pool *pgxpool.Pool, schemas []string, path string) (Artifact, int, error) {
	rows, err := pool.Query(ctx, `
SELECT n.nspname, c.relname, k.conname, k.contype::text, pg_get_constraintdef(k.oid, true), k.convalidated
FROM pg_constraint k
JOIN pg_class c ON c.oid = k.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
  AND (coalesce(cardinality($1::text[]), 0) = 0 OR n.nspname = ANY($1::text[]))
ORDER BY 1, 2, 3`, schemas)
	if err != nil {
		return Artifact{}, 0, fmt.Errorf("backup constraints: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Constraint, error) {
		var c Constraint
		err := r.Scan(&c.Schema, &c.Table, &c.Name, &c.Type, &c.Definition, &c.Validated)
		if t, ok := constraintTypes[c.Type]; ok {
			c.Type = t
		}
		return c, err
	})
	if err != nil {
		return Artifact{}, 0, fmt.Errorf("backup constraints: %w", err)
	}
	if cs == nil {
		cs = []Constraint{}
	}
	b, err := json.MarshalIndent(cs, "", "  ")
	if err != nil {
		return Artifact{}, 0, fmt.Errorf("backup constraints: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return Artifact{}, 0, fmt.Errorf("backup constraints: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return Artifact{}, 0, fmt.Errorf("backup constraints: %w", err)
	}
	a, err := finish(tmp.Name(), path, KindConstraints, len(cs))
	if err != nil {
		_ = os.Remove(tmp.Name())
		return Artifact{}, 0, err
	}
	return a, len(cs), nil
}
