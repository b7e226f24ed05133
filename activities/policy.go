package activities

import (
	"context"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/workflows"
)

// ResolvePolicy checks a rollout's input against this worker's policy and
// returns the effective policy (public keys only), or a non-retryable
// PolicyError naming every problem: nothing has changed yet.
func (a *Activities) ResolvePolicy(ctx context.Context, req workflows.PolicyRequest) (*workflows.EffectivePolicy, error) {
	eff, err := workflows.ResolvePolicy(a.Config.Policy, req, a.SlackSigner, time.Now())
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), workflows.ErrTypePolicy, nil)
	}
	return eff, nil
}
