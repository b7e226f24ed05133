// Package discovery is FKDiscover: the read-only discovery a release owner
// can start from the UI against a configured environment. It proposes the
// missing foreign keys and returns the migration a rollout takes.
package discovery

import (
	"fmt"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/workflows/steps"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

func (in Input) validate() error {
	var errs []string
	if strings.TrimSpace(in.Environment) == "" {
		errs = append(errs, `environment is required: a name from the worker's configuration, e.g. {"environment": "staging"}`)
	}
	if in.Threshold < 0 || in.Threshold > 1 {
		errs = append(errs, fmt.Sprintf("threshold %v: want a confidence between 0 and 1 (default 0.65)", in.Threshold))
	}
	for _, s := range in.Schemas {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, "schemas: an empty name")
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid discover input: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Workflow runs discovery once. It changes nothing in the database
// (every query is READ ONLY with statement and lock timeouts), so it has no
// gates; a bad input fails at once with the reason.
func Workflow(ctx workflow.Context, in Input) (*Result, error) {
	if err := in.validate(); err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypePlan, nil)
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour, HeartbeatTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3, NonRetryableErrorTypes: []string{steps.ErrTypeConfig, steps.ErrTypePlan, steps.ErrTypeDeterministic}},
		Summary:     "discover missing foreign keys in " + in.Environment + " (read-only)",
	})
	var res Result
	if err := workflow.ExecuteActivity(actx, ActDiscoverForeignKeys, in).Get(actx, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
