package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/fkrollout/fkrollout/internal/identity"
)

// keyCommands manage approvers' signing keys.
func keyCommands() []*cobra.Command {
	return []*cobra.Command{keygenCmd()}
}

// keygenCmd makes an approver's key pair: the private key stays with the
// approver, the public key goes into the worker's policy.identities.
func keygenCmd() *cobra.Command {
	var out, name string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "keygen --out FILE",
		Short:   "make an approver key pair: the private key signs your decisions, the public key goes into the worker's policy",
		Example: "  fkrollout keygen --out ~/.fkrollout/rita.key --identity rita@example.com",
		Args:    exactArgs(),
	}
	cmd.Flags().StringVar(&out, "out", "", "file for the private key (created with mode 600; never overwritten; required)")
	cmd.Flags().StringVar(&name, "identity", defaultActor(), "the identity the key belongs to (shown in the configuration snippet)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the key file, identity and public key as JSON")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		stdout := cmd.OutOrStdout()
		if out == "" {
			return usageError{msg: "--out is required"}
		}
		pub, priv, err := identity.GenerateKey()
		if err != nil {
			return err
		}
		if err := identity.WritePrivateKey(out, priv); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, map[string]string{"private_key_file": out, "identity": name, "public_key": identity.FormatPublicKey(pub)})
		}
		fmt.Fprintf(stdout, "private key written to %s (keep it; pass it with --key or FKROLLOUT_KEY)\n", out)
		fmt.Fprintf(stdout, "add to the worker configuration:\n\npolicy:\n  identities:\n    %s:\n      public_keys: [%q]\n", name, identity.FormatPublicKey(pub))
		return nil
	}
	return cmd
}
