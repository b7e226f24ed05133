package slackbot

import (
	"context"
	"errors"
	"net/http"

	"github.com/slack-go/slack"
	"go.temporal.io/sdk/temporal"
)

// Types of the application errors a Notifier returns, for the Notify
// activity's retry policy and for anyone reading a failed attempt.
const (
	// ErrTypeRateLimited: Slack answered 429. NextRetryDelay is its
	// Retry-After, so the next attempt is neither early nor late.
	ErrTypeRateLimited = "SlackRateLimited"
	// ErrTypeUnavailable: 5xx, a timeout, a dropped connection; retryable.
	ErrTypeUnavailable = "SlackUnavailable"
	// ErrTypeRefused: Slack refused the call itself (invalid_auth,
	// channel_not_found, not_in_channel, ...); retrying cannot help.
	ErrTypeRefused = "SlackRefused"
)

// transientAPIErrors are the "ok": false codes Slack documents as worth
// retrying; every other one is permanent.
var transientAPIErrors = map[string]bool{
	"ratelimited": true, "internal_error": true, "fatal_error": true,
	"service_unavailable": true, "request_timeout": true,
}

// activityError turns the error of one Slack call (op, e.g.
// "chat.postMessage") into the Temporal application error that gets it
// retried the right way: a rate limit after Slack's Retry-After, transient
// failures by the activity's backoff, a refusal never. Context errors pass
// through: the activity's own timeout or cancellation is Temporal's.
func activityError(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return temporal.NewApplicationErrorWithOptions(op, ErrTypeRateLimited,
			temporal.ApplicationErrorOptions{NextRetryDelay: rl.RetryAfter, Cause: err})
	}
	retryable := func() error {
		return temporal.NewApplicationErrorWithOptions(op, ErrTypeUnavailable, temporal.ApplicationErrorOptions{Cause: err})
	}
	refused := func() error {
		return temporal.NewApplicationErrorWithOptions(op, ErrTypeRefused, temporal.ApplicationErrorOptions{NonRetryable: true, Cause: err})
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		switch {
		case sc.Code == http.StatusTooManyRequests:
			// A 429 without Retry-After: the activity's backoff.
			return temporal.NewApplicationErrorWithOptions(op, ErrTypeRateLimited, temporal.ApplicationErrorOptions{Cause: err})
		case sc.Code >= 500, sc.Code == http.StatusRequestTimeout:
			return retryable()
		default:
			return refused()
		}
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		if transientAPIErrors[se.Err] {
			return retryable()
		}
		return refused()
	}
	// Network failures and anything unrecognised: the retry policy bounds
	// how often it is tried.
	return retryable()
}
