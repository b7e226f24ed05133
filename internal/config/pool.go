package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// defaultPoolMaxConnIdleTime: a fleet touches many databases, often on one
// cluster; a database whose rollout is done (or waits at a gate) gives its
// connections back within a minute instead of holding them for pgx's 30.
const defaultPoolMaxConnIdleTime = time.Minute

// PoolConfig parses dsn into a pool configuration with fkrollout's defaults
// (DefaultPoolMaxConns connections, idle ones closed after a minute) for
// the pool settings the DSN does not name: an operator's pool_max_conns or
// pool_max_conn_idle_time in a DSN wins. applicationName is set unless the
// DSN names one. The parse error is not returned because it can echo the
// DSN's password.
func PoolConfig(dsn, applicationName string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("DSN does not parse")
	}
	set := dsnSettings(dsn)
	if !set["pool_max_conns"] {
		cfg.MaxConns = DefaultPoolMaxConns
	}
	if !set["pool_max_conn_idle_time"] {
		cfg.MaxConnIdleTime = defaultPoolMaxConnIdleTime
	}
	if !set["application_name"] && applicationName != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = applicationName
	}
	return cfg, nil
}

// PoolMaxConns is the size of the pool PoolConfig builds for dsn:
// its pool_max_conns, else DefaultPoolMaxConns (also for a DSN that does
// not parse, which Validate reports).
func PoolMaxConns(dsn string) int {
	cfg, err := PoolConfig(dsn, "")
	if err != nil {
		return DefaultPoolMaxConns
	}
	return int(cfg.MaxConns)
}

// dsnSettings lists the setting names a DSN spells out, in either of the
// forms pgx accepts: a postgres:// URL's query, or keyword=value pairs.
func dsnSettings(dsn string) map[string]bool {
	out := map[string]bool{}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			for k := range u.Query() {
				out[k] = true
			}
		}
		return out
	}
	for _, f := range strings.Fields(dsn) {
		if k, _, ok := strings.Cut(f, "="); ok {
			out[strings.TrimSpace(k)] = true
		}
	}
	return out
}
