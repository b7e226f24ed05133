package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// keyFlag is the approver's private key: every decision, control request
// and start the CLI sends is signed with it, because the worker believes no
// name a client merely states.
func keyFlag(fs *flag.FlagSet) *string {
	return fs.String("key", os.Getenv("FKROLLOUT_KEY"), "your ed25519 private key (PEM, from `keygen`; FKROLLOUT_KEY): signs the request as --actor/--requester")
}

// signer signs requests as one identity; a nil signer sends them unsigned
// (accepted only by a worker in development mode).
type signer struct {
	key ed25519.PrivateKey
	id  string
	now func() time.Time
}

func loadSigner(path, id string) (*signer, error) {
	if path == "" {
		return nil, nil
	}
	k, err := identity.ReadPrivateKey(path)
	if err != nil {
		return nil, err
	}
	return &signer{key: k, id: id, now: time.Now}, nil
}

func (s *signer) sign(c identity.Claim) *identity.Proof {
	if s == nil {
		return nil
	}
	p := identity.Sign(s.key, s.id, c, identity.NewNonce(), s.now())
	return &p
}

// runIDOf is the id of the current run: proofs are bound to it, so a
// decision cannot be replayed on a later run that reuses the workflow id.
func runIDOf(ctx context.Context, c client.Client, id string) (string, error) {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return "", updateError(id, err)
	}
	return d.GetWorkflowExecutionInfo().GetExecution().GetRunId(), nil
}

func (s *signer) signDecision(ctx context.Context, c client.Client, id string, in *approval.DecisionInput) error {
	if s == nil {
		return nil
	}
	run, err := runIDOf(ctx, c, id)
	if err != nil {
		return err
	}
	in.Proof = s.sign(approval.DecisionClaim(id, run, *in))
	return nil
}

func (s *signer) signControl(ctx context.Context, c client.Client, id, kind string, in *approval.ControlInput) error {
	if s == nil {
		return nil
	}
	run, err := runIDOf(ctx, c, id)
	if err != nil {
		return err
	}
	in.Proof = s.sign(approval.ControlClaim(id, run, kind, *in))
	return nil
}

func (s *signer) signRefusal(ctx context.Context, c client.Client, id string, r *approval.Refusal) {
	if s == nil {
		return
	}
	if run, err := runIDOf(ctx, c, id); err == nil {
		r.Proof = s.sign(approval.RefusalClaim(id, run, *r))
	}
}

// cmdKeygen makes an approver's key pair: the private key stays with the
// approver, the public key goes into the worker's policy.identities.
func cmdKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var out, name string
	fs := newFlags("keygen", stderr)
	fs.StringVar(&out, "out", "", "file for the private key (created with mode 600; never overwritten)")
	fs.StringVar(&name, "identity", defaultActor(), "the identity the key belongs to (shown in the configuration snippet)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if out == "" {
		return usageError{msg: "usage: keygen --out FILE [--identity NAME]"}
	}
	pub, priv, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	if err := identity.WritePrivateKey(out, priv); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key written to %s (keep it; pass it with --key or FKROLLOUT_KEY)\n", out)
	fmt.Fprintf(stdout, "add to the worker configuration:\n\npolicy:\n  identities:\n    %s:\n      public_keys: [%q]\n", name, identity.FormatPublicKey(pub))
	return nil
}
