// Package identity proves who sent a decision or a control request.
//
// Temporal accepts any payload from anyone with access to the namespace, so
// the actor named in a decision proves nothing. Every decision, control
// request and rollout start therefore carries a Proof: an ed25519 signature
// over a canonical Claim. Approvers sign with their own key (the CLI); the
// worker's Slack handler signs for the Slack users it has verified with a key
// derived from Slack's signing secret. Only public keys reach workflow
// history, so the workflow can check proofs deterministically without ever
// holding a secret.
//
// The package is pure (standard library crypto only) so workflow code may
// import it.
package identity

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// SlackSigner is the KeyID of proofs made by the worker's Slack handler on
// behalf of a Slack user it verified (signed request, user mapped to an
// identity in the worker configuration).
const SlackSigner = "slack"

// PublicKeyPrefix starts every public key in configuration and history.
const PublicKeyPrefix = "ed25519:"

// Claim is what a proof signs. Every field that changes the meaning of a
// request is part of it, so a proof cannot be moved to another rollout, run,
// gate, choice or actor.
type Claim struct {
	// Action is the request kind: "decide", "pause", "resume", "abort",
	// "rollback", "start" or "refusal".
	Action     string `json:"action"`
	WorkflowID string `json:"workflow_id"`
	// RunID pins a decision to one run; empty for "start" (not known yet).
	RunID       string   `json:"run_id"`
	GateID      string   `json:"gate_id,omitempty"`
	Choice      string   `json:"choice,omitempty"`
	Actor       string   `json:"actor"`
	Roles       []string `json:"roles,omitempty"`
	SlackUser   string   `json:"slack_user,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	Constraints []string `json:"constraints,omitempty"`
	Rollback    bool     `json:"rollback,omitempty"`
	Via         string   `json:"via,omitempty"`
	// Digest binds a start to its content (sha256 of the plan and
	// environments, see StartDigest).
	Digest string `json:"digest,omitempty"`
}

// Proof accompanies a request: which key signed it, a single-use nonce, when
// it was signed and the signature (base64) over Claim + nonce + time.
type Proof struct {
	KeyID     string    `json:"key_id"`
	Nonce     string    `json:"nonce"`
	SignedAt  time.Time `json:"signed_at"`
	Signature string    `json:"signature"`
}

// message is the canonical byte string signed: a domain tag, then the JSON of
// the claim with the nonce and time (struct field order makes it stable).
func message(c Claim, nonce string, at time.Time) []byte {
	b, _ := json.Marshal(struct {
		Claim
		Nonce    string `json:"nonce"`
		SignedAt string `json:"signed_at"`
	}{c, nonce, at.UTC().Format(time.RFC3339Nano)})
	return append([]byte("fkrollout-proof-v1\n"), b...)
}

// Sign makes a proof of c with key under keyID.
func Sign(key ed25519.PrivateKey, keyID string, c Claim, nonce string, at time.Time) Proof {
	sig := ed25519.Sign(key, message(c, nonce, at))
	return Proof{KeyID: keyID, Nonce: nonce, SignedAt: at.UTC(), Signature: base64.StdEncoding.EncodeToString(sig)}
}

// Errors callers branch on; each wraps into a message naming the request.
var (
	ErrNoProof      = errors.New("the request is not signed")
	ErrBadSignature = errors.New("the signature does not match the request")
	ErrStale        = errors.New("the signature is too old or from the future")
	ErrUnknownKey   = errors.New("no public key is configured for this signer")
)

// Verify checks p against c with any of pubs (configured keys of one
// identity, or the Slack signer), and that it was signed within skew of now.
func Verify(c Claim, p *Proof, pubs []string, now time.Time, skew time.Duration) error {
	if p == nil || p.Signature == "" {
		return ErrNoProof
	}
	if strings.TrimSpace(p.Nonce) == "" {
		return fmt.Errorf("%w: empty nonce", ErrBadSignature)
	}
	if len(pubs) == 0 {
		return fmt.Errorf("%w %q", ErrUnknownKey, p.KeyID)
	}
	if d := now.Sub(p.SignedAt); d > skew || d < -skew {
		return fmt.Errorf("%w (signed at %s, now %s, allowed skew %s)", ErrStale,
			p.SignedAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	sig, err := base64.StdEncoding.DecodeString(p.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature is not base64 ed25519", ErrBadSignature)
	}
	msg := message(c, p.Nonce, p.SignedAt)
	for _, s := range pubs {
		pub, err := ParsePublicKey(s)
		if err != nil {
			continue
		}
		if ed25519.Verify(pub, msg, sig) {
			return nil
		}
	}
	return ErrBadSignature
}

// ParsePublicKey reads "ed25519:<base64 of 32 bytes>".
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("public key %q: want %s<base64>", short(s), PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("public key %q: want %d bytes of base64", short(s), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// FormatPublicKey writes the configuration form of pub.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// DeriveSlackSigner derives the Slack handler's signing key from Slack's
// signing secret (or the app token in Socket Mode): every worker sharing the
// configuration derives the same key, and it survives restarts, so rollouts
// that recorded its public key keep verifying.
func DeriveSlackSigner(secret string) ed25519.PrivateKey {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("fkrollout slack decision signer v1"))
	return ed25519.NewKeyFromSeed(mac.Sum(nil))
}

// StartDigest is the content a start proof binds: the plan text and the
// environment order, so a signed start cannot be reused for another plan.
func StartDigest(plan string, environments []string) string {
	h := sha256.New()
	h.Write([]byte(plan))
	for _, e := range environments {
		h.Write([]byte{0})
		h.Write([]byte(e))
	}
	return "sha256:" + base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
