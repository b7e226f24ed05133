package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

const testSkew = 5 * time.Minute

func testClaim() Claim {
	return Claim{
		Action:      "decide",
		WorkflowID:  "rollout-1",
		RunID:       "run-1",
		GateID:      "staging/remediation/1",
		Choice:      "delete",
		Actor:       "alice@example.com",
		Roles:       []string{"dba"},
		Reason:      "orphans are test rows",
		Constraints: []string{"fk_a"},
		Digest:      "sha256:abc",
	}
}

func newKey(t *testing.T) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := GenerateKey()
	require.NoError(t, err)
	return FormatPublicKey(pub), priv
}

func TestSignVerifyRoundTrip(t *testing.T) {
	pub, priv := newKey(t)
	c := testClaim()
	p := Sign(priv, c.Actor, c, "nonce-1", testNow)
	assert.Equal(t, c.Actor, p.KeyID)
	assert.Equal(t, "nonce-1", p.Nonce)
	assert.True(t, p.SignedAt.Equal(testNow))
	require.NoError(t, Verify(c, &p, []string{pub}, testNow, testSkew))
	// Any of the identity's keys may have signed.
	otherPub, _ := newKey(t)
	require.NoError(t, Verify(c, &p, []string{otherPub, pub}, testNow, testSkew))
	// A signing time in another zone is the same instant.
	pz := Sign(priv, c.Actor, c, "nonce-2", testNow.In(time.FixedZone("WIB", 7*3600)))
	require.NoError(t, Verify(c, &pz, []string{pub}, testNow, testSkew))
}

func TestVerifyRefusesTamperedClaim(t *testing.T) {
	pub, priv := newKey(t)
	signed := testClaim()
	p := Sign(priv, signed.Actor, signed, "nonce-1", testNow)
	cases := []struct {
		name   string
		tamper func(c *Claim)
	}{
		{"action", func(c *Claim) { c.Action = "rollback" }},
		{"workflow id", func(c *Claim) { c.WorkflowID = "rollout-2" }},
		{"run id", func(c *Claim) { c.RunID = "run-2" }},
		{"gate", func(c *Claim) { c.GateID = "production/remediation/1" }},
		{"choice", func(c *Claim) { c.Choice = "set-null" }},
		{"actor", func(c *Claim) { c.Actor = "mallory@example.com" }},
		{"roles added", func(c *Claim) { c.Roles = append(c.Roles, "admin") }},
		{"roles dropped", func(c *Claim) { c.Roles = nil }},
		{"slack user", func(c *Claim) { c.SlackUser = "U123" }},
		{"reason", func(c *Claim) { c.Reason = "something else" }},
		{"constraints", func(c *Claim) { c.Constraints = []string{"fk_a", "fk_b"} }},
		{"constraints dropped", func(c *Claim) { c.Constraints = nil }},
		{"rollback", func(c *Claim) { c.Rollback = true }},
		{"via", func(c *Claim) { c.Via = "slack" }},
		{"digest", func(c *Claim) { c.Digest = "sha256:abd" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testClaim()
			tc.tamper(&c)
			require.NotEqual(t, signed, c, "the case must change the claim")
			err := Verify(c, &p, []string{pub}, testNow, testSkew)
			assert.ErrorIs(t, err, ErrBadSignature)
		})
	}
	t.Run("untampered still verifies", func(t *testing.T) {
		assert.NoError(t, Verify(testClaim(), &p, []string{pub}, testNow, testSkew))
	})
}

func TestVerifyRefusesTamperedProof(t *testing.T) {
	pub, priv := newKey(t)
	c := testClaim()
	good := Sign(priv, c.Actor, c, "nonce-1", testNow)
	cases := []struct {
		name   string
		tamper func(p *Proof)
		want   error
	}{
		{"nonce changed", func(p *Proof) { p.Nonce = "nonce-2" }, ErrBadSignature},
		{"signing time moved", func(p *Proof) { p.SignedAt = p.SignedAt.Add(time.Second) }, ErrBadSignature},
		{"signature not base64", func(p *Proof) { p.Signature = "!!not base64!!" }, ErrBadSignature},
		{"signature too short", func(p *Proof) { p.Signature = base64.StdEncoding.EncodeToString([]byte("short")) }, ErrBadSignature},
		{"signature of another message", func(p *Proof) {
			p.Signature = Sign(priv, c.Actor, Claim{Action: "start"}, p.Nonce, p.SignedAt).Signature
		}, ErrBadSignature},
		{"empty nonce", func(p *Proof) { p.Nonce = "" }, ErrBadSignature},
		{"blank nonce", func(p *Proof) { p.Nonce = "  " }, ErrBadSignature},
		{"no signature", func(p *Proof) { p.Signature = "" }, ErrNoProof},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			tc.tamper(&p)
			assert.ErrorIs(t, Verify(c, &p, []string{pub}, testNow, testSkew), tc.want)
		})
	}
	t.Run("empty nonce even when signed so", func(t *testing.T) {
		p := Sign(priv, c.Actor, c, "", testNow)
		err := Verify(c, &p, []string{pub}, testNow, testSkew)
		assert.ErrorIs(t, err, ErrBadSignature)
		assert.Contains(t, err.Error(), "empty nonce")
	})
}

func TestVerifyKeysAndFreshness(t *testing.T) {
	pub, priv := newKey(t)
	otherPub, otherPriv := newKey(t)
	c := testClaim()
	at := func(d time.Duration) Proof { return Sign(priv, c.Actor, c, "nonce-1", testNow.Add(d)) }
	p := at(0)
	byOther := Sign(otherPriv, c.Actor, c, "nonce-1", testNow)
	cases := []struct {
		name  string
		proof *Proof
		pubs  []string
		want  error // nil: verifies
	}{
		{"signed by the key", &p, []string{pub}, nil},
		{"wrong key", &p, []string{otherPub}, ErrBadSignature},
		{"signed by another key", &byOther, []string{pub}, ErrBadSignature},
		{"unparsable configured key only", &p, []string{"ed25519:broken"}, ErrBadSignature},
		{"unparsable key next to the right one", &p, []string{"ed25519:broken", pub}, nil},
		{"no configured key", &p, nil, ErrUnknownKey},
		{"nil proof", nil, []string{pub}, ErrNoProof},
		{"within skew in the past", ptr(at(-testSkew + time.Second)), []string{pub}, nil},
		{"within skew in the future", ptr(at(testSkew - time.Second)), []string{pub}, nil},
		{"stale", ptr(at(-testSkew - time.Second)), []string{pub}, ErrStale},
		{"from the future", ptr(at(testSkew + time.Second)), []string{pub}, ErrStale},
		{"a day old", ptr(at(-24 * time.Hour)), []string{pub}, ErrStale},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Verify(c, tc.proof, tc.pubs, testNow, testSkew)
			if tc.want == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tc.want)
		})
	}
	t.Run("unknown key names the signer", func(t *testing.T) {
		err := Verify(c, &p, nil, testNow, testSkew)
		require.ErrorIs(t, err, ErrUnknownKey)
		assert.Contains(t, err.Error(), c.Actor)
	})
}

func ptr[T any](v T) *T { return &v }

func TestParsePublicKey(t *testing.T) {
	pubKey, _, err := GenerateKey()
	require.NoError(t, err)
	good := FormatPublicKey(pubKey)
	require.True(t, strings.HasPrefix(good, PublicKeyPrefix))
	got, err := ParsePublicKey(good)
	require.NoError(t, err)
	assert.Equal(t, pubKey, got)
	got, err = ParsePublicKey("  " + good + "\n")
	require.NoError(t, err, "surrounding space is trimmed")
	assert.Equal(t, pubKey, got)

	raw := base64.StdEncoding.EncodeToString(pubKey)
	bad := []struct{ name, key string }{
		{"empty", ""},
		{"no prefix", raw},
		{"other algorithm", "rsa:" + raw},
		{"prefix only", PublicKeyPrefix},
		{"not base64", PublicKeyPrefix + "not*base64"},
		{"too short", PublicKeyPrefix + base64.StdEncoding.EncodeToString(pubKey[:31])},
		{"too long", PublicKeyPrefix + base64.StdEncoding.EncodeToString(append([]byte{0}, pubKey...))},
		{"33 bytes unpadded", PublicKeyPrefix + base64.RawStdEncoding.EncodeToString(make([]byte, 33))},
		{"url alphabet", PublicKeyPrefix + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, ed25519.PublicKeySize))},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePublicKey(tc.key)
			assert.Error(t, err)
		})
	}
}

func TestDeriveSlackSigner(t *testing.T) {
	a1 := DeriveSlackSigner("secret-a")
	a2 := DeriveSlackSigner("secret-a")
	b := DeriveSlackSigner("secret-b")
	assert.Equal(t, a1, a2, "the same secret derives the same key on every worker")
	assert.NotEqual(t, a1, b)
	assert.NotEqual(t, a1.Public(), b.Public())

	// A proof made with one worker's derived key verifies with another's
	// public key, and not with a key derived from another secret.
	c := testClaim()
	p := Sign(a1, SlackSigner, c, "nonce-1", testNow)
	require.NoError(t, Verify(c, &p, []string{FormatPublicKey(a2.Public().(ed25519.PublicKey))}, testNow, testSkew))
	assert.ErrorIs(t, Verify(c, &p, []string{FormatPublicKey(b.Public().(ed25519.PublicKey))}, testNow, testSkew), ErrBadSignature)
}

func TestStartDigest(t *testing.T) {
	base := StartDigest("foreign_keys: []", []string{"staging", "production"})
	assert.True(t, strings.HasPrefix(base, "sha256:"))
	assert.Equal(t, base, StartDigest("foreign_keys: []", []string{"staging", "production"}))
	for name, other := range map[string]string{
		"plan changed":       StartDigest("foreign_keys: [x]", []string{"staging", "production"}),
		"order changed":      StartDigest("foreign_keys: []", []string{"production", "staging"}),
		"environment added":  StartDigest("foreign_keys: []", []string{"staging", "production", "dr"}),
		"environment joined": StartDigest("foreign_keys: []", []string{"stagingproduction"}),
		"boundary moved":     StartDigest("foreign_keys: []staging", []string{"production"}),
	} {
		assert.NotEqual(t, base, other, name)
	}
}

func TestPrivateKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "alice.key")
	pub, priv, err := GenerateKey()
	require.NoError(t, err)
	require.NoError(t, WritePrivateKey(path, priv))

	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	got, err := ReadPrivateKey(path)
	require.NoError(t, err)
	assert.Equal(t, priv, got)
	c := testClaim()
	p := Sign(got, c.Actor, c, NewNonce(), testNow)
	require.NoError(t, Verify(c, &p, []string{FormatPublicKey(pub)}, testNow, testSkew))

	t.Run("refuses to overwrite", func(t *testing.T) {
		_, other, err := GenerateKey()
		require.NoError(t, err)
		require.Error(t, WritePrivateKey(path, other))
		again, err := ReadPrivateKey(path)
		require.NoError(t, err)
		assert.Equal(t, priv, again, "the existing key is untouched")
	})
	t.Run("refuses a key readable by others", func(t *testing.T) {
		open := filepath.Join(dir, "open.key")
		require.NoError(t, WritePrivateKey(open, priv))
		require.NoError(t, os.Chmod(open, 0o644))
		_, err := ReadPrivateKey(open)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "readable by others")
		require.NoError(t, os.Chmod(open, 0o600))
		_, err = ReadPrivateKey(open)
		assert.NoError(t, err)
	})
	t.Run("refuses what is not a PEM key", func(t *testing.T) {
		junk := filepath.Join(dir, "junk.key")
		require.NoError(t, os.WriteFile(junk, []byte("not a key"), 0o600))
		_, err := ReadPrivateKey(junk)
		assert.ErrorContains(t, err, "no PEM block")
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := ReadPrivateKey(filepath.Join(dir, "absent.key"))
		assert.Error(t, err)
	})
}

func TestNewNonce(t *testing.T) {
	a, b := NewNonce(), NewNonce()
	assert.Len(t, a, 32)
	assert.NotEqual(t, a, b)
}
