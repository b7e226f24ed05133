// Package signers holds test identities with their private keys: each
// stands for one person's CLI, as far as a workflow can tell. Tests sign
// starts, decisions and controls with them and put the public keys in the
// worker policy they test.
package signers

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/policy"
)

// Keys are the private keys of test identities by name.
type Keys map[string]ed25519.PrivateKey

// New makes a key for each identity.
func New(t *testing.T, who ...string) Keys {
	t.Helper()
	k := Keys{}
	for _, w := range who {
		_, priv, err := identity.GenerateKey()
		require.NoError(t, err)
		k[w] = priv
	}
	return k
}

// Pub is who's public key as the worker policy writes it.
func (k Keys) Pub(who string) string {
	return identity.FormatPublicKey(k[who].Public().(ed25519.PublicKey))
}

// Sign makes who's proof of c at the given time with a fresh nonce.
func (k Keys) Sign(t *testing.T, who string, c identity.Claim, at time.Time) *identity.Proof {
	t.Helper()
	key, ok := k[who]
	require.True(t, ok, "no test key for %s", who)
	p := identity.Sign(key, who, c, identity.NewNonce(), at)
	return &p
}

// Identities are the policy identities of every key, each with its roles.
func (k Keys) Identities(roles map[string][]string) map[string]policy.Identity {
	ids := map[string]policy.Identity{}
	for who := range k {
		ids[who] = policy.Identity{PublicKeys: []string{k.Pub(who)}, Roles: roles[who]}
	}
	return ids
}
