package dbx

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// LockMode is a table lock mode, spelled as pg_locks.mode spells it.
type LockMode string

// The table lock modes (PostgreSQL documentation, "Table-Level Locks").
const (
	AccessShare          LockMode = "AccessShareLock"
	RowShare             LockMode = "RowShareLock"
	RowExclusive         LockMode = "RowExclusiveLock"
	ShareUpdateExclusive LockMode = "ShareUpdateExclusiveLock"
	Share                LockMode = "ShareLock"
	ShareRowExclusive    LockMode = "ShareRowExclusiveLock"
	Exclusive            LockMode = "ExclusiveLock"
	AccessExclusive      LockMode = "AccessExclusiveLock"
)

// conflicts is PostgreSQL's table lock conflict matrix.
var conflicts = map[LockMode][]LockMode{
	AccessShare:          {AccessExclusive},
	RowShare:             {Exclusive, AccessExclusive},
	RowExclusive:         {Share, ShareRowExclusive, Exclusive, AccessExclusive},
	ShareUpdateExclusive: {ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive},
	Share:                {RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive},
	ShareRowExclusive:    {RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive},
	Exclusive:            {RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive},
	AccessExclusive:      {AccessShare, RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive},
}

// Conflicts lists the modes that conflict with m.
func (m LockMode) Conflicts() []LockMode { return conflicts[m] }

// LockTarget is one table a statement is about to lock, and in which mode.
type LockTarget struct {
	// Table is the table's quoted name (plan.TableName.Sanitize, or a
	// regclass rendered as text).
	Table string
	Mode  LockMode
}

// Blocker is a transaction that holds, or waits for, a lock conflicting
// with one our statement is about to request. It never carries query
// text: a query can hold literals (customer data, secrets).
type Blocker struct {
	// PID is the backend's process id; 0 for a prepared transaction.
	PID             int    `json:"pid"`
	ApplicationName string `json:"application_name,omitempty"`
	BackendType     string `json:"backend_type,omitempty"`
	// State is pg_stat_activity.state ("active", "idle in transaction", ...).
	State   string `json:"state,omitempty"`
	Table   string `json:"table"`
	Mode    string `json:"mode"`
	Granted bool   `json:"granted"`
	// XactAge is how long its transaction has been open: from
	// pg_stat_activity.xact_start, or, when the role may not read it,
	// since fkrollout first saw the lock.
	XactAge time.Duration `json:"xact_age"`
	// AgeObserved: XactAge is fkrollout's own observation, not xact_start.
	AgeObserved bool `json:"age_observed,omitempty"`
	// Prepared: a prepared (two-phase) transaction, which ends only when
	// someone commits or rolls it back.
	Prepared bool `json:"prepared,omitempty"`

	vxid string
}

// String is the one-line form operators read in heartbeats and errors.
func (b Blocker) String() string {
	who := fmt.Sprintf("pid %d", b.PID)
	if b.Prepared {
		who = "a prepared transaction"
	}
	var attrs []string
	if b.ApplicationName != "" {
		attrs = append(attrs, fmt.Sprintf("application_name %q", b.ApplicationName))
	}
	if b.BackendType != "" && b.BackendType != "client backend" {
		attrs = append(attrs, b.BackendType)
	}
	if b.State != "" {
		attrs = append(attrs, b.State)
	}
	age := "transaction open " + b.XactAge.Round(100*time.Millisecond).String()
	if b.AgeObserved {
		age = "seen for " + b.XactAge.Round(100*time.Millisecond).String()
	}
	attrs = append(attrs, age)
	verb := "holds"
	if !b.Granted {
		verb = "waits for"
	}
	return fmt.Sprintf("%s (%s) %s %s on %s", who, strings.Join(attrs, ", "), verb, b.Mode, b.Table)
}

// Querier runs a query: *pgxpool.Pool, *pgx.Conn, pgx.Tx.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// conflictingLocks lists every relation lock, held or awaited, that
// conflicts with one of targets, except the caller's own backend's.
const conflictingLocks = `
WITH want AS (
	SELECT to_regclass(t) AS rel, m AS mode FROM unnest($1::text[], $2::text[]) AS u(t, m)
)
SELECT coalesce(l.pid, 0), coalesce(a.application_name, ''), coalesce(a.backend_type, ''), coalesce(a.state, ''),
       l.relation::regclass::text, l.mode, l.granted,
       coalesce(extract(epoch FROM clock_timestamp() - a.xact_start)::float8, -1),
       coalesce(l.virtualtransaction, ''), l.pid IS NULL
FROM pg_catalog.pg_locks l
JOIN want w ON w.rel = l.relation AND w.mode = l.mode
LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation'
  AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
  AND l.pid IS DISTINCT FROM pg_backend_pid()
ORDER BY 8 DESC`

// Blockers lists the transactions holding or awaiting a lock that
// conflicts with targets, oldest first.
func Blockers(ctx context.Context, q Querier, targets []LockTarget) ([]Blocker, error) {
	var tables, modes []string
	for _, t := range targets {
		for _, c := range t.Mode.Conflicts() {
			tables, modes = append(tables, t.Table), append(modes, string(c))
		}
	}
	if len(tables) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, conflictingLocks, tables, modes)
	if err != nil {
		return nil, fmt.Errorf("look for conflicting locks: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Blocker, error) {
		var b Blocker
		var age float64
		err := r.Scan(&b.PID, &b.ApplicationName, &b.BackendType, &b.State, &b.Table, &b.Mode, &b.Granted, &age, &b.vxid, &b.Prepared)
		b.XactAge = -1
		if age >= 0 {
			b.XactAge = time.Duration(age * float64(time.Second))
		}
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("look for conflicting locks: %w", err)
	}
	return out, nil
}

// Wait is what a statement is waiting for before it asks for its locks:
// passed to the Waiting callback on every look that finds blockers.
type Wait struct {
	// Blockers are the transactions being waited out, oldest first, at
	// most maxWaitBlockers of them; More counts the others.
	Blockers []Blocker `json:"blockers"`
	More     int       `json:"more,omitempty"`
	// Waited is the time spent waiting so far, for this statement.
	Waited time.Duration `json:"waited"`
	// Budget is LockPolicy.BlockerWait: once Waited reaches it the
	// statement asks for its locks anyway, under lock_timeout.
	Budget time.Duration `json:"budget"`
}

// newWait keeps the first maxWaitBlockers blockers and counts the rest.
func newWait(bs []Blocker, waited, budget time.Duration) Wait {
	n := min(len(bs), maxWaitBlockers)
	return Wait{Blockers: bs[:n:n], More: len(bs) - n, Waited: waited, Budget: budget}
}

// String is the heartbeat's and the log's line.
func (w Wait) String() string {
	if len(w.Blockers) == 0 {
		return fmt.Sprintf("waited %s for conflicting transactions", w.Waited.Round(time.Millisecond))
	}
	more := ""
	if n := len(w.Blockers) - 1 + w.More; n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("waiting (%s of %s) without queueing for %s%s", w.Waited.Round(time.Second), w.Budget, w.Blockers[0], more)
}

// clearance waits, without taking any lock, until no long transaction
// holds or awaits a lock conflicting with the targets, so the statement
// never sits in the lock queue where every later writer would queue
// behind it. It keeps what it saw across calls of one statement.
type clearance struct {
	db       Querier
	targets  []LockTarget
	p        LockPolicy
	waiting  func(Wait)
	waited   time.Duration
	firstSaw map[string]time.Time
	// last is the most recent non-empty set of blockers (what was waited
	// for); current is what the latest look found (maybe nothing).
	last, current []Blocker
}

// blocking keeps the conflicting transactions that count as blockers:
// older than p.BlockerAge (a short write ends before a queued statement
// would hold anyone up noticeably); idle in transaction, however young
// (it ends only when its client comes back); prepared; or of unknown age
// the first time they are seen.
func (c *clearance) blocking(all []Blocker, now time.Time) []Blocker {
	var out []Blocker
	seen := map[string]time.Time{}
	for _, b := range all {
		key := fmt.Sprintf("%d/%s", b.PID, b.vxid)
		first, ok := c.firstSaw[key]
		if !ok {
			first = now
		}
		seen[key] = first
		if b.XactAge < 0 {
			b.XactAge, b.AgeObserved = now.Sub(first), true
			if !ok {
				out = append(out, b)
				continue
			}
		}
		if b.Prepared || b.XactAge >= c.p.BlockerAge || strings.HasPrefix(b.State, "idle in transaction") {
			out = append(out, b)
		}
	}
	c.firstSaw = seen
	return out
}

// wait returns once the targets are clear of blockers or this statement's
// BlockerWait is spent (then the attempt goes ahead under lock_timeout:
// the bound on a never-ending blocker is the retries' and the gate's).
func (c *clearance) wait(ctx context.Context) error {
	if c.p.BlockerWait <= 0 || len(c.targets) == 0 {
		return nil
	}
	poll := c.p.BlockerPoll
	for {
		all, err := Blockers(ctx, c.db, c.targets)
		if err != nil {
			return err
		}
		bs := c.blocking(all, time.Now())
		c.current = bs
		if len(bs) == 0 {
			return nil
		}
		c.last = bs
		if c.waited >= c.p.BlockerWait {
			return nil
		}
		if c.waiting != nil {
			c.waiting(newWait(bs, c.waited, c.p.BlockerWait))
		}
		// Back off while the blockers stay: a short blocker is seen gone
		// soon, a long one is not polled for needlessly.
		d := min(poll/2+rand.N(poll/2+1), c.p.BlockerWait-c.waited)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", bs[0], ctx.Err())
		case <-time.After(d):
		}
		c.waited += d
		poll = min(poll*2, maxBlockerPoll)
	}
}

// maxWaitBlockers keeps a heartbeat small on a table with many blockers.
const maxWaitBlockers = 10

// maxBlockerPoll bounds the time between two looks while blocked: at most
// this long passes between the blocker's end and the statement's attempt.
const maxBlockerPoll = time.Second
