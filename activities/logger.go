package activities

import (
	"context"
	"log/slog"

	"go.temporal.io/sdk/activity"
	tlog "go.temporal.io/sdk/log"
)

// activityLogger is the SDK's activity logger, which the worker backs with
// its slog handler and which adds the namespace, task queue, workflow and
// activity ids and types, and the attempt to every line, so call sites add
// only what is theirs. Outside an activity (a test calling a method
// directly) it logs through fallback.
func activityLogger(ctx context.Context, fallback *slog.Logger) tlog.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	if fallback == nil {
		fallback = slog.Default()
	}
	return tlog.NewStructuredLogger(fallback)
}
