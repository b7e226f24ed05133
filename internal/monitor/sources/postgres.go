package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
)

// DB is what the PostgreSQL source needs (*pgxpool.Pool satisfies it).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// PGSource measures a PostgreSQL database itself (the figures a DBA reads by
// hand after a deploy), as deltas between checks:
//   - latency_ms and throughput_per_s per tracked table, from
//     pg_stat_statements (mean execution time and calls of the statements
//     whose text names the table);
//   - error_rate_pct of the database, from pg_stat_database rollbacks over
//     all transactions (the monitor's own transaction is subtracted);
//   - fk_violations, SQLSTATE 23503 errors counted in the server log when
//     LogPath is set and readable.
//
// Every part that cannot be measured (extension not installed or not
// preloaded, no calls, unreadable log) is reported missing with the reason,
// which makes the check inconclusive rather than failing the watch.
type PGSource struct {
	SourceName string
	DB         DB
	// Tables tracked (the rollout's tables plus configured ones).
	Tables   []plan.TableName
	MinCalls int64
	// Log, when set, counts FK violations.
	Log *LogTail
	// Probes are statements the source times itself, each in a
	// transaction it rolls back (the perf phase's "EXPLAIN ANALYZE
	// INSERT ..." as a live measure): latency_ms@<source>/probe:<name>.
	// They measure latency where pg_stat_statements is not preloaded.
	// SQL comes from the worker configuration only.
	Probes []monitor.Probe
	// Now is the clock (default time.Now); tests replace it.
	Now func() time.Time
}

// Name implements monitor.Source.
func (p *PGSource) Name() string { return p.SourceName }

// Provides implements monitor.Source.
func (p *PGSource) Provides() []string {
	m := []string{monitor.MetricLatencyMS, monitor.MetricThroughput, monitor.MetricErrorRatePct}
	if p.Log != nil {
		m = append(m, monitor.MetricFKViolations)
	}
	return m
}

type pgCursor struct {
	At         time.Time           `json:"at"`
	Statements map[string]stmtStat `json:"statements,omitempty"`
	Commits    int64               `json:"commits"`
	Rollbacks  int64               `json:"rollbacks"`
	Log        *LogCursor          `json:"log,omitempty"`
	// OwnRollbacks are the probe transactions this check rolled back,
	// subtracted from the next interval's rollbacks.
	OwnRollbacks int64 `json:"own_rollbacks,omitempty"`
}

type stmtStat struct {
	Calls   int64   `json:"calls"`
	TotalMS float64 `json:"total_ms"`
}

// pgssUnavailable is why statement statistics are missing ("" = available).
type pgssStatus struct {
	schema string
	reason string
}

// Collect implements monitor.Source.
func (p *PGSource) Collect(ctx context.Context, raw json.RawMessage) (monitor.Reading, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	var prev *pgCursor
	if raw != nil {
		prev = &pgCursor{}
		if err := json.Unmarshal(raw, prev); err != nil {
			return monitor.Reading{}, fmt.Errorf("postgres source %s: bad cursor: %w", p.SourceName, err)
		}
	}
	cur := pgCursor{At: now()}
	var pgss pgssStatus
	var dbName string
	// One read-only transaction per check: one commit of our own to
	// subtract from the error-rate denominator.
	tx, err := p.DB.Begin(ctx)
	if err != nil {
		return monitor.Reading{}, fmt.Errorf("postgres source %s: begin: %w", p.SourceName, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SET TRANSACTION READ ONLY"); err != nil {
		return monitor.Reading{}, fmt.Errorf("postgres source %s: %w", p.SourceName, err)
	}
	if err := tx.QueryRow(ctx, `SELECT current_database(), xact_commit, xact_rollback FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&dbName, &cur.Commits, &cur.Rollbacks); err != nil {
		return monitor.Reading{}, fmt.Errorf("postgres source %s: read pg_stat_database: %w", p.SourceName, err)
	}
	pgss, cur.Statements, err = p.statements(ctx, tx)
	if err != nil {
		return monitor.Reading{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return monitor.Reading{}, fmt.Errorf("postgres source %s: commit: %w", p.SourceName, err)
	}

	r := monitor.Reading{Values: map[string]float64{}, Missing: map[string]string{}}
	for _, pr := range p.Probes {
		series := monitor.MetricLatencyMS + "@" + p.SourceName + "/probe:" + pr.Name
		d, err := p.probe(ctx, pr)
		cur.OwnRollbacks++
		if err != nil {
			r.Missing[series] = err.Error()
			continue
		}
		if prev != nil {
			r.Values[series] = float64(d.Microseconds()) / 1000
		}
	}
	var logErr error
	if p.Log != nil {
		var prevLog *LogCursor
		if prev != nil {
			prevLog = prev.Log
		}
		n, lc, err := p.Log.Count(prevLog, dbName)
		if err != nil {
			logErr = err
			cur.Log = prevLog
		} else {
			cur.Log = &lc
			if prev != nil && prevLog != nil {
				r.Values[monitor.MetricFKViolations+"@"+p.SourceName] = float64(n)
			}
		}
	}
	r.Cursor, _ = json.Marshal(cur)
	if prev == nil {
		return r, nil // primed
	}
	secs := cur.At.Sub(prev.At).Seconds()

	dc := cur.Commits - prev.Commits - 1 // our own previous check's commit
	dr := cur.Rollbacks - prev.Rollbacks - prev.OwnRollbacks
	dc, dr = max(dc, 0), max(dr, 0)
	dbSeries := "@" + p.SourceName + "/" + dbName
	switch {
	case cur.Commits < prev.Commits || cur.Rollbacks < prev.Rollbacks:
		r.Missing[monitor.MetricErrorRatePct+dbSeries] = "pg_stat_database counters went backwards (statistics reset)"
	case dc+dr <= 0:
		r.Missing[monitor.MetricErrorRatePct+dbSeries] = "no transactions in the interval"
	default:
		r.Values[monitor.MetricErrorRatePct+dbSeries] = 100 * float64(dr) / float64(dc+dr)
	}

	switch {
	case pgss.reason != "" && len(p.Probes) > 0:
		// The probes are this source's latency measure: statement
		// statistics would add to them, their absence is not missing data.
		r.Notes = append(r.Notes, "statement latency from probes only: "+pgss.reason)
	case pgss.reason != "":
		r.Missing[monitor.MetricLatencyMS+"@"+p.SourceName] = pgss.reason
		r.Missing[monitor.MetricThroughput+"@"+p.SourceName] = pgss.reason
	default:
		minCalls := max(p.MinCalls, 1)
		for _, t := range p.Tables {
			key := t.String()
			c, pr := cur.Statements[key], prev.Statements[key]
			series := "@" + p.SourceName + "/" + key
			calls, total := c.Calls-pr.Calls, c.TotalMS-pr.TotalMS
			switch {
			case calls < 0 || total < 0:
				r.Missing[monitor.MetricLatencyMS+series] = "pg_stat_statements counters went backwards (reset or evicted)"
			case calls < minCalls:
				r.Missing[monitor.MetricLatencyMS+series] = fmt.Sprintf("%d calls in the interval (fewer than %d)", calls, minCalls)
			default:
				r.Values[monitor.MetricLatencyMS+series] = total / float64(calls)
			}
			if calls >= 0 && secs > 0 {
				r.Values[monitor.MetricThroughput+series] = float64(calls) / secs
			}
		}
	}
	if logErr != nil {
		r.Missing[monitor.MetricFKViolations+"@"+p.SourceName] = logErr.Error()
	}
	return r, nil
}

// probe times one probe statement in a transaction it always rolls back.
func (p *PGSource) probe(ctx context.Context, pr monitor.Probe) (time.Duration, error) {
	tx, err := p.DB.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("probe %s: begin: %w", pr.Name, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	start := time.Now()
	if _, err := tx.Exec(ctx, pr.SQL); err != nil {
		return 0, fmt.Errorf("probe %s: %w", pr.Name, err)
	}
	return time.Since(start), nil
}

// statements reads pg_stat_statements per tracked table, or says why it
// cannot.
func (p *PGSource) statements(ctx context.Context, tx pgx.Tx) (pgssStatus, map[string]stmtStat, error) {
	var st pgssStatus
	err := tx.QueryRow(ctx, `SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'`).Scan(&st.schema)
	if errors.Is(err, pgx.ErrNoRows) {
		st.reason = "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements; it also needs shared_preload_libraries)"
		return st, nil, nil
	}
	if err != nil {
		return st, nil, fmt.Errorf("postgres source %s: look up pg_stat_statements: %w", p.SourceName, err)
	}
	names := make([]string, len(p.Tables))
	patterns := make([]string, len(p.Tables))
	for i, t := range p.Tables {
		names[i] = t.String()
		// \m...\M are PostgreSQL word boundaries; the name is escaped.
		patterns[i] = `\m` + regexp.QuoteMeta(t.Name) + `\M`
	}
	view := pgx.Identifier{st.schema, "pg_stat_statements"}.Sanitize()
	q := `SELECT t.name, coalesce(sum(s.calls), 0)::bigint, coalesce(sum(s.total_exec_time), 0)::float8
FROM unnest($1::text[], $2::text[]) AS t(name, pattern)
LEFT JOIN ` + view + ` s ON s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND s.query ~* t.pattern AND s.query NOT LIKE '%pg_stat_statements%'
GROUP BY t.name`
	// A savepoint keeps the transaction usable when the view refuses to
	// answer (the library is not preloaded).
	if _, err := tx.Exec(ctx, "SAVEPOINT pgss"); err != nil {
		return st, nil, fmt.Errorf("postgres source %s: %w", p.SourceName, err)
	}
	rows, err := tx.Query(ctx, q, names, patterns)
	out := map[string]stmtStat{}
	if err == nil {
		for rows.Next() {
			var name string
			var s stmtStat
			if err = rows.Scan(&name, &s.Calls, &s.TotalMS); err != nil {
				break
			}
			out[name] = s
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "55000" || strings.Contains(pgErr.Message, "shared_preload_libraries")) {
			if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT pgss"); rerr != nil {
				return st, nil, fmt.Errorf("postgres source %s: %w", p.SourceName, rerr)
			}
			st.reason = "pg_stat_statements is installed but not loaded (add it to shared_preload_libraries and restart PostgreSQL): " + pgErr.Message
			return st, nil, nil
		}
		return st, nil, fmt.Errorf("postgres source %s: read pg_stat_statements: %w", p.SourceName, err)
	}
	return st, out, nil
}

// PGStatStatementsPreloaded reports whether the server preloads
// pg_stat_statements (tests and the worker's start-up check use it).
func PGStatStatementsPreloaded(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}) (bool, error) {
	var libs string
	if err := q.QueryRow(ctx, "SELECT current_setting('shared_preload_libraries')").Scan(&libs); err != nil {
		return false, fmt.Errorf("read shared_preload_libraries: %w", err)
	}
	for _, l := range strings.Split(libs, ",") {
		if strings.TrimSpace(strings.Trim(strings.TrimSpace(l), `"`)) == "pg_stat_statements" {
			return true, nil
		}
	}
	return false, nil
}
