package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/notify"
)

// notifyError is what Notify returns for a delivery error. A notifier's
// Temporal application error stays the returned error itself: the SDK
// reads its retry options (NextRetryDelay from Slack's Retry-After,
// non-retryable for a revoked token) only from the error an activity
// returns, never from one it wraps.
func (a *Activities) notifyError(kind notify.Kind, err error) error {
	ae, ok := errors.AsType[*temporal.ApplicationError](err)
	if !ok {
		return a.clean(fmt.Errorf("notify %s: %w", kind, err))
	}
	return temporal.NewApplicationErrorWithOptions(a.redact(fmt.Sprintf("notify %s: %v", kind, err)), ae.Type(),
		temporal.ApplicationErrorOptions{NonRetryable: ae.NonRetryable(), NextRetryDelay: ae.NextRetryDelay(), Category: ae.Category()})
}
