// Package steps is how fkrollout's workflows run activities: the retry
// policy and timeouts of each kind of step, the application error types
// activities return (which of them a retry cannot fix), and the Notify
// activity every workflow uses to tell people what happens.
package steps

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// ActNotify sends a notification (notify.Event → notify.Receipt).
const ActNotify = "Notify"

// Application error types activities return. Non-retryable: retrying
// cannot fix them.
const (
	// ErrTypePlan: the plan text or the plan against this database is wrong.
	ErrTypePlan = "PlanError"
	// ErrTypeConfig: the worker is not configured for what was asked
	// (unknown environment).
	ErrTypeConfig = "ConfigError"
	// ErrTypeOrphans: VALIDATE CONSTRAINT found violating rows (23503).
	ErrTypeOrphans = "OrphansFound"
	// ErrTypeRemediation: a remediation cannot be done as asked (set-null
	// on a NOT NULL column).
	ErrTypeRemediation = "RemediationError"
	// ErrTypeDeterministic: PostgreSQL refused in a way a retry would repeat
	// (SQLSTATE 23503, 23502, 23514, 42P01, 42703, 42704, 42830, 42804, …,
	// a definition conflict, an audit statement timeout). Its details
	// carry a DeterministicDetail.
	ErrTypeDeterministic = "DeterministicError"
	// ErrTypeMissing: the constraint a step acts on does not exist any more
	// (someone dropped it); retrying the same step cannot help, applying
	// it again can.
	ErrTypeMissing = "ConstraintMissing"
)

// DeterministicDetail is the detail of an ErrTypeDeterministic failure.
type DeterministicDetail struct {
	SQLState string `json:"sqlstate,omitempty"`
	Reason   string `json:"reason"`
}

// Activity option presets. Transient database errors are retried with
// backoff; plan, configuration and orphan errors are not (retrying cannot
// fix them). After the retries a step asks a human instead of failing.
// Functions, not variables: every caller gets its own copy to change.

// RetryPolicy is the retry policy of database steps.
func RetryPolicy() *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		MaximumAttempts:        6,
		NonRetryableErrorTypes: []string{ErrTypePlan, ErrTypeConfig, ErrTypeOrphans, ErrTypeRemediation},
	}
}

// Short is a quick step: checks, statistics, policy, bookkeeping.
func Short() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 2 * time.Minute, RetryPolicy: RetryPolicy()}
}

// Long is a step that reads or writes many rows (audits, backups,
// remediation, behaviour tests); it heartbeats, so a dead worker is
// noticed within HeartbeatTimeout.
func Long() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 4 * time.Hour, HeartbeatTimeout: time.Minute, RetryPolicy: RetryPolicy()}
}

// DDL is ADD CONSTRAINT ... NOT VALID or DROP, bounded by lock_timeout and
// the retries of 55P03 in the engine.
func DDL() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 15 * time.Minute, HeartbeatTimeout: 30 * time.Second, RetryPolicy: RetryPolicy()}
}

// Validate is VALIDATE CONSTRAINT, which can take hours on a big table; the
// activity heartbeats every few seconds while it runs, so a crashed
// worker's validation is retried by another within 10 s.
func Validate() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 12 * time.Hour, HeartbeatTimeout: 10 * time.Second, RetryPolicy: RetryPolicy()}
}

// Notify sends a notification: a few quick attempts, never a failed run.
func Notify() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3}}
}

// WithSummary labels a step in the Temporal UI's event history.
func WithSummary(o workflow.ActivityOptions, summary string) workflow.ActivityOptions {
	o.Summary = summary
	return o
}

// IsType reports whether err is an application error of the given type.
func IsType(err error, typ string) bool {
	var ae *temporal.ApplicationError
	return err != nil && errors.As(err, &ae) && ae.Type() == typ
}

// RootCause is the innermost error of a chain (an activity's own message
// under the SDK's wrapping).
func RootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}
