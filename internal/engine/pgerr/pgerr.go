// Package pgerr tells deterministic PostgreSQL failures from transient ones.
// A deterministic error (a missing column, a violated constraint, a type
// mismatch) fails the same way on every retry, so retrying it only delays
// the human who has to decide; a transient one (a lock timeout, a dropped
// connection, a failover) may well pass on the next attempt.
package pgerr

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Deterministic SQLSTATEs: retrying the same statement on the same data
// gives the same answer.
var deterministic = map[string]string{
	"23503": "foreign key violation",
	"23502": "not-null violation",
	"23514": "check violation",
	"23505": "unique violation",
	"42P01": "undefined table",
	"42703": "undefined column",
	"42704": "undefined object",
	"42830": "invalid foreign key (no unique constraint matches the referenced columns)",
	"42804": "datatype mismatch",
	"42P07": "duplicate object (definition conflict)",
	"42710": "duplicate object (definition conflict)",
	"42501": "insufficient privilege",
	"42809": "wrong object type",
}

// StatementTimeout is query_canceled, which a statement_timeout raises.
const StatementTimeout = "57014"

// Failure describes a deterministic failure.
type Failure struct {
	SQLState string
	// Reason is the class in words ("undefined column").
	Reason string
	// Message is PostgreSQL's own message (with detail and hint).
	Message string
}

func (f Failure) String() string {
	return fmt.Sprintf("SQLSTATE %s (%s): %s", f.SQLState, f.Reason, f.Message)
}

// Options widen what counts as deterministic for one caller.
type Options struct {
	// StatementTimeout: a statement_timeout (57014) is deterministic, as for
	// an audit query that will not get faster on a retry. A cancellation
	// of ctx itself is never treated so.
	StatementTimeout bool
}

// Classify returns the deterministic failure inside err, if any.
func Classify(ctx context.Context, err error, o Options) (Failure, bool) {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) {
		return Failure{}, false
	}
	msg := pe.Message
	if pe.Detail != "" {
		msg += " (" + pe.Detail + ")"
	}
	if pe.Hint != "" {
		msg += "; hint: " + pe.Hint
	}
	if reason, ok := deterministic[pe.Code]; ok {
		return Failure{SQLState: pe.Code, Reason: reason, Message: msg}, true
	}
	if pe.Code == StatementTimeout && o.StatementTimeout && ctx.Err() == nil {
		return Failure{SQLState: pe.Code, Reason: "statement timeout", Message: msg}, true
	}
	return Failure{}, false
}

// DeterministicCodes lists the SQLSTATEs Classify treats as deterministic,
// for documentation and tests.
func DeterministicCodes() map[string]string {
	out := make(map[string]string, len(deterministic))
	for k, v := range deterministic {
		out[k] = v
	}
	return out
}
