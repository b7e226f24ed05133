package dbx

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Settings are the session settings fkrollout runs its statements under.
// Every package that needs one of them goes through Apply (or, for a pool,
// StartupParams), so what a statement waits for and how it is named in
// pg_stat_activity is decided in one place. A zero field is left as it is.
type Settings struct {
	// LockTimeout is lock_timeout: how long a statement waits for a lock
	// before failing with 55P03.
	LockTimeout time.Duration
	// StatementTimeout is statement_timeout: how long one statement runs
	// before failing with 57014 (NoTimeout: never).
	StatementTimeout time.Duration
	// ApplicationName is application_name, as pg_stat_activity shows it.
	ApplicationName string
	// ClientCheckInterval is client_connection_check_interval (PostgreSQL
	// 14 and later; left out on older servers): how often a running
	// statement checks that its client is still there. Without it, the
	// backend of a worker killed mid-VALIDATE scans on and keeps its lock,
	// so the retry waits on a statement nobody will read.
	ClientCheckInterval time.Duration
}

// DeadClientCheck is how often fkrollout's statements check that the
// worker that sent them is alive.
const DeadClientCheck = 5 * time.Second

// Scope is how long Apply's settings last.
type Scope int

const (
	// Transaction settings (SET LOCAL) end with the transaction, so they
	// also hold behind a transaction-mode pooler.
	Transaction Scope = iota
	// Session settings (SET) last until Reset or the connection closes: only
	// for a dedicated connection, never one a pooler may hand to others.
	Session
)

// Execer is satisfied by pgx.Tx, *pgx.Conn and *pgxpool.Conn.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Settings of the lock policy: its lock and statement timeouts.
func (p LockPolicy) Settings() Settings {
	return Settings{LockTimeout: p.LockTimeout, StatementTimeout: p.StatementTimeout, ClientCheckInterval: DeadClientCheck}
}

// pairs are the settings' names and values, in a fixed order.
func (s Settings) pairs() (names, values []string) {
	if s.ClientCheckInterval > 0 {
		names, values = append(names, "client_connection_check_interval"), append(values, millis(s.ClientCheckInterval))
	}
	if s.LockTimeout > 0 {
		names, values = append(names, "lock_timeout"), append(values, millis(s.LockTimeout))
	}
	switch {
	case s.StatementTimeout > 0:
		names, values = append(names, "statement_timeout"), append(values, millis(s.StatementTimeout))
	case s.StatementTimeout < 0: // NoTimeout
		names, values = append(names, "statement_timeout"), append(values, "0")
	}
	if s.ApplicationName != "" {
		names, values = append(names, "application_name"), append(values, s.ApplicationName)
	}
	return names, values
}

// millis renders d in whole milliseconds, the unit both timeouts use. A
// positive duration under 1 ms becomes 1 ms: 0 would switch the timeout off.
func millis(d time.Duration) string {
	return fmt.Sprintf("%dms", max(d.Milliseconds(), 1))
}

// Apply sets s on q. With Transaction scope q must be in a transaction (a
// pgx.Tx); with Session scope the settings stay on the connection until
// Reset. Each setting is a SET statement, not a set_config query: a query
// would take the transaction's snapshot, after which SET TRANSACTION
// ISOLATION LEVEL is refused (25001).
func Apply(ctx context.Context, q Execer, s Settings, scope Scope) error {
	if s.ClientCheckInterval > 0 && !serverAtLeast(q, 14) {
		s.ClientCheckInterval = 0
	}
	names, values := s.pairs()
	set := "SET LOCAL "
	if scope == Session {
		set = "SET "
	}
	for i, n := range names {
		if _, err := q.Exec(ctx, set+n+" = "+literal(values[i])); err != nil {
			return fmt.Errorf("set %s: %w", n, err)
		}
	}
	return nil
}

// serverAtLeast reports whether q's server is at least this major version,
// from the version the server announced at connect (no query). An Execer
// that cannot tell is taken to be older.
func serverAtLeast(q Execer, major int) bool {
	var pc *pgconn.PgConn
	switch c := q.(type) {
	case interface{ Conn() *pgx.Conn }:
		pc = c.Conn().PgConn()
	case interface{ PgConn() *pgconn.PgConn }:
		pc = c.PgConn()
	default:
		return false
	}
	v := pc.ParameterStatus("server_version")
	n, err := strconv.Atoi(strings.SplitN(strings.TrimSpace(v), ".", 2)[0])
	return err == nil && n >= major
}

// literal quotes v as an escape string constant, read the same whatever
// standard_conforming_strings says.
func literal(v string) string {
	v = strings.ReplaceAll(v, "\x00", "")
	v = strings.ReplaceAll(v, `\`, `\\`)
	return "E'" + strings.ReplaceAll(v, "'", `\'`) + "'"
}

// Reset returns the settings s names to the server's defaults on a
// session (the undo of Apply with Session scope).
func Reset(ctx context.Context, q Execer, s Settings) error {
	names, _ := s.pairs()
	for _, n := range names {
		if _, err := q.Exec(ctx, "RESET "+n); err != nil {
			return fmt.Errorf("reset %s: %w", n, err)
		}
	}
	return nil
}

// StartupParams puts s into a connection configuration's runtime
// parameters, sent when each connection opens: for pools whose every
// connection carries the settings (the worker's application_name).
func StartupParams(cfg *pgconn.Config, s Settings) {
	names, values := s.pairs()
	if len(names) > 0 && cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	for i, n := range names {
		cfg.RuntimeParams[n] = values[i]
	}
}
