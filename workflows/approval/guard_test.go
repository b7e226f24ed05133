package approval

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/testkit/signers"
)

const (
	alice   = "alice@example.com"
	bob     = "bob@example.com"
	mallory = "mallory@example.com"
)

// TestGuardNonces: a signed request is used once; another nonce of the same
// signer passes; nonces are forgotten once their signature is stale anyway.
func TestGuardNonces(t *testing.T) {
	keys := signers.New(t, alice, bob, mallory)
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	g := &Guard{Policy: &EffectivePolicy{MaxClockSkew: "5m0s", Identities: keys.Identities(map[string][]string{alice: {"dba"}})}}
	c := DecisionClaim("rollout-test-1", "run-1", DecisionInput{GateID: "staging/remediation/1", Choice: ChoiceDelete, Actor: alice})
	first := keys.Sign(t, alice, c, now)

	actor, roles, err := g.Check(c, first, now)
	require.NoError(t, err)
	assert.Equal(t, alice, actor)
	assert.Equal(t, []string{"dba"}, roles)
	_, _, err = g.Check(c, first, now)
	require.NoError(t, err, "check alone records nothing (validators call it)")

	g.Remember(first, now)
	_, _, err = g.Check(c, first, now.Add(time.Minute))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "replay refused")
	// The key id is not signed and matches the actor in any case: another
	// spelling of it is the same request.
	recased := *first
	recased.KeyID = "ALICE@Example.COM"
	_, _, err = g.Check(c, &recased, now.Add(time.Minute))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "replay refused")

	second := keys.Sign(t, alice, c, now.Add(time.Minute))
	_, _, err = g.Check(c, second, now.Add(time.Minute))
	require.NoError(t, err, "a new nonce of the same signer passes")

	// The same nonce under another signer is another request.
	byBob := identity.Sign(keys[bob], bob, DecisionClaim("rollout-test-1", "run-1", DecisionInput{GateID: "staging/remediation/1", Choice: ChoiceDelete, Actor: bob}), first.Nonce, now)
	_, _, err = g.Check(DecisionClaim("rollout-test-1", "run-1", DecisionInput{GateID: "staging/remediation/1", Choice: ChoiceDelete, Actor: bob}), &byBob, now)
	require.NoError(t, err)

	// After twice the skew the old nonce is forgotten; its signature is
	// refused as stale instead.
	later := now.Add(11 * time.Minute)
	g.Remember(keys.Sign(t, bob, c, later), later)
	assert.NotContains(t, g.nonces, alice+"/"+first.Nonce)
	_, _, err = g.Check(c, first, later)
	assert.ErrorIs(t, err, identity.ErrStale)

	t.Run("histories before the policy believe the client", func(t *testing.T) {
		legacy := &Guard{}
		actor, roles, err := legacy.Check(identity.Claim{Action: UpdateDecide, Actor: " mallory@example.com ", Roles: []string{"dba"}}, nil, now)
		require.NoError(t, err)
		assert.Equal(t, mallory, actor)
		assert.Equal(t, []string{"dba"}, roles)
		legacy.Remember(first, now)
		assert.Empty(t, legacy.nonces, "nothing to remember without a policy")
		assert.False(t, legacy.Strict())
	})
	t.Run("strictness", func(t *testing.T) {
		assert.True(t, g.Strict())
		assert.False(t, (&Guard{Policy: &EffectivePolicy{TrustClientIdentity: true}}).Strict())
	})
}
