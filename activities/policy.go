package activities

import (
	"context"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"go.temporal.io/sdk/temporal"
)

// ResolvePolicy checks a rollout's input against this worker's policy and
// returns the effective policy (public keys only), or a non-retryable
// PolicyError naming every problem: nothing has changed yet.
func (a *Activities) ResolvePolicy(ctx context.Context, req rollout.PolicyRequest) (*approval.EffectivePolicy, error) {
	eff, err := rollout.ResolvePolicy(a.Config.Policy, req, a.SlackSigner, time.Now())
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), rollout.ErrTypePolicy, nil)
	}
	return eff, nil
}
