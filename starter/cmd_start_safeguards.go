package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// checkSafeguards refuses, before anything starts, what the worker's first
// activity would refuse and the CLI can see itself: a skip that names no
// safeguard, a last environment without a maintenance window that is not
// skipped. With --config it runs the worker's whole policy check, as
// `lint --input --config` does. What the rollout turns off is printed to
// stderr so nobody starts one without knowing.
func checkSafeguards(in rollout.Input, configPath string, stderr io.Writer, now time.Time) error {
	if in.DryRun {
		return nil
	}
	if err := rollout.ValidateInput(in); err != nil {
		return usageError{msg: err.Error()}
	}
	last := in.Environments[len(in.Environments)-1]
	if last.MaintenanceWindow == nil && !in.Skips(policy.SafeguardWindow) {
		return usageError{msg: fmt.Sprintf("the last environment (%s) needs a maintenance window: --window HH:MM/DURATION[/TZ] (or --skip window, where the worker's policy.allow_skip lists window)", last.Name)}
	}
	if configPath != "" {
		cfg, err := config.LoadFrom(configPath, os.LookupEnv)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		req := rollout.PolicyRequest{WorkflowID: "start", Input: rollout.WithSafeDefaults(in), Safeguards: true}
		// The proof signs the workflow id chosen at start; the worker
		// verifies it. Here the policy is checked as for an unsigned start.
		req.Input.RequesterProof = nil
		if _, err := rollout.ResolvePolicy(cfg.Policy, req, "", now); err != nil {
			return fmt.Errorf("%s (checked against %s)", err, configPath)
		}
	}
	if off := rollout.SafeguardsOff(in); len(off) > 0 {
		fmt.Fprintf(stderr, "safeguards off (the worker's policy.allow_skip must allow each):\n  %s\n", strings.Join(rollout.SafeguardText(off), "\n  "))
	}
	return nil
}

// checkFleetSafeguards is checkSafeguards for a fleet: every target needs
// the fleet's window unless skipped, and with --config the fleet passes
// the worker's policy as its first activity will check it (each skip
// allowed by policy.allow_skip, each target allowed its perf phase).
func checkFleetSafeguards(in fleet.Input, configPath string, stderr io.Writer, now time.Time) error {
	if in.DryRun {
		return nil
	}
	if in.MaintenanceWindow == nil && !slices.Contains(in.Skip, policy.SafeguardWindow) {
		return usageError{msg: "every target needs a maintenance window: --window HH:MM/DURATION[/TZ] (or --skip window, where the worker's policy.allow_skip lists window)"}
	}
	if configPath != "" {
		cfg, err := config.LoadFrom(configPath, os.LookupEnv)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		req := in.PolicyRequest("start", true)
		req.Input.RequesterProof = nil // signs the fleet id chosen at start; the worker verifies it
		if _, err := rollout.ResolvePolicy(cfg.Policy, req, "", now); err != nil {
			return fmt.Errorf("%s (checked against %s)", err, configPath)
		}
	}
	if off := rollout.SafeguardsOff(in.SafeguardInput()); len(off) > 0 {
		fmt.Fprintf(stderr, "safeguards off in every database (the worker's policy.allow_skip must allow each):\n  %s\n", strings.Join(rollout.SafeguardText(off), "\n  "))
	}
	return nil
}
