package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// keyFlag is the approver's private key: every decision, control request
// and start the CLI sends is signed with it, because the worker believes no
// name a client merely states.
func keyFlag(fs *pflag.FlagSet) *string {
	return fs.String("key", os.Getenv("FKROLLOUT_KEY"), "your ed25519 private key (PEM, from fkrollout keygen; FKROLLOUT_KEY): signs the request as --actor/--requester")
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
		return nil, fmt.Errorf("--key: %w", err)
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
