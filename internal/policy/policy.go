// Package policy is the worker's approval policy: who may decide which gate
// in which environment, how many distinct approvers a proceeding choice
// needs, which remediation choices exist, what a gate timeout may do, which
// environment must come first, who may pause, abort and roll back, and where
// the perf phase may run.
//
// It lives in the worker configuration, never in the rollout input: a
// rollout's input may only tighten it (workflows.ResolvePolicy). The package
// is pure types and checks so the workflow code may import it.
package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/identity"
)

// Gate kinds a rule can name (notify.GateKind values).
var GateKinds = []string{"remediation", "promotion", "approval", "investigate"}

// Choices that proceed (change data or move on). A gate timeout may apply
// one only when the environment's timeout_may_proceed lists it.
var ProceedingChoices = []string{"approve", "delete", "delete-with-dependents", "set-null", "accept-debt", "skip", "continue", "approve-override"}

// Safeguards are the runbook steps every rollout runs unless its input
// turns one off (skip) and the worker's allow_skip lets it: the staging
// perf phase, the watch after the last environment, the last
// environment's maintenance window and its full backup.
var Safeguards = []string{SafeguardPerf, SafeguardMonitor, SafeguardWindow, SafeguardFullBackup}

// Safeguard names, as input skip, policy.allow_skip and the report use them.
const (
	SafeguardPerf       = "perf"
	SafeguardMonitor    = "monitor"
	SafeguardWindow     = "window"
	SafeguardFullBackup = "full_backup"
)

// DefaultMinWatch is the shortest watch a rollout may ask for unless
// policy.min_watch says otherwise: the runbook's 24 hours.
const DefaultMinWatch = 24 * time.Hour

// RemediationChoices are every remediation choice fkrollout knows.
var RemediationChoices = []string{"delete", "delete-with-dependents", "set-null", "accept-debt", "re-audit", "abort"}

// Config is the `policy:` section of the worker configuration.
//
//	policy:
//	  trust_client_identity: false    # development only: believe the actor a client names
//	  max_clock_skew: 5m
//	  identities:
//	    alice@example.com: {public_keys: ["ed25519:…"], roles: [dba]}
//	  operators: [oncall@example.com]  # may pause, abort and roll back any rollout
//	  allow_skip: []                   # safeguards an input may turn off (perf, monitor, window, full_backup)
//	  min_watch: 24h                   # shortest watch after the last environment
//	  rehearse_rollback: false         # rehearse the rollback in staging before production
//	  environments:
//	    staging:    {approvers: [alice@example.com, "role:dba"], perf: true}
//	    production: {approvers: ["role:dba"], min_approvals: 2, requires: [staging]}
type Config struct {
	// TrustClientIdentity believes the actor and roles a client names
	// without a signature: the raw Temporal UI/CLI path then decides gates.
	// Development only (make demo); the worker logs a warning at start.
	TrustClientIdentity bool `yaml:"trust_client_identity" json:"trust_client_identity"`
	// MaxClockSkew is how old (or how far in the future) a signed request
	// may be (default 5m). Nonces are remembered for twice as long.
	MaxClockSkew string `yaml:"max_clock_skew" json:"max_clock_skew,omitempty"`
	// Identities by name: their public keys (the CLI signs with the private
	// half) and roles. Slack users map to these names in slack.users.
	Identities map[string]Identity `yaml:"identities" json:"identities,omitempty"`
	// Operators may pause, resume, abort and roll back every rollout.
	Operators []string `yaml:"operators" json:"operators,omitempty"`
	// Environments by name. A rollout naming an environment missing here
	// is refused at start: no approver means nobody approves.
	Environments map[string]Environment `yaml:"environments" json:"environments,omitempty"`
	// AllowSkip lists the safeguards (Safeguards) a rollout's input may turn
	// off with skip; default none: every rollout runs all of them.
	AllowSkip []string `yaml:"allow_skip" json:"allow_skip,omitempty"`
	// MinWatch is the shortest watch a rollout may ask for (default 24h).
	MinWatch string `yaml:"min_watch" json:"min_watch,omitempty"`
	// RehearseRollback has every rollout of more than one environment
	// rehearse its rollback in the first (drop, re-apply, validate) before
	// it is promoted; an input can ask for it itself (rehearse_rollback).
	RehearseRollback bool `yaml:"rehearse_rollback" json:"rehearse_rollback,omitempty"`
}

// Identity is one person or automation.
type Identity struct {
	PublicKeys []string `yaml:"public_keys" json:"public_keys,omitempty"`
	Roles      []string `yaml:"roles" json:"roles,omitempty"`
}

// Environment is the policy of one environment.
type Environment struct {
	// Approvers are identities or "role:<name>" (roles from identities or
	// from the Slack user groups in slack.approver_groups).
	Approvers []string `yaml:"approvers" json:"approvers,omitempty"`
	// MinApprovals distinct approvers must agree on a proceeding choice
	// (default 1).
	MinApprovals int `yaml:"min_approvals" json:"min_approvals,omitempty"`
	// AllowRequester lets the requester approve their own rollout here.
	AllowRequester bool `yaml:"allow_requester" json:"allow_requester,omitempty"`
	// Gates override approvers, min_approvals and timeouts per gate kind.
	Gates map[string]GateRule `yaml:"gates" json:"gates,omitempty"`
	// RemediationChoices offered at this environment's remediation gates
	// (default: all of delete, delete-with-dependents, set-null, accept-debt,
	// re-audit, abort).
	RemediationChoices []string `yaml:"remediation_choices" json:"remediation_choices,omitempty"`
	// TimeoutMayProceed lists the proceeding choices a gate timeout may
	// apply here (default none: a timeout only rejects or aborts).
	TimeoutMayProceed []string `yaml:"timeout_may_proceed" json:"timeout_may_proceed,omitempty"`
	// Requires lists environments that must complete earlier in the same
	// rollout (production: [staging]).
	Requires []string `yaml:"requires" json:"requires,omitempty"`
	// Operators may pause, resume, abort and roll back rollouts here, on
	// top of the global operators.
	Operators []string `yaml:"operators" json:"operators,omitempty"`
	// Perf allows the perf phase (it writes the workload's rows) here.
	Perf bool `yaml:"perf" json:"perf,omitempty"`
}

// GateRule overrides the environment's rule for one gate kind.
type GateRule struct {
	Approvers    []string `yaml:"approvers" json:"approvers,omitempty"`
	MinApprovals int      `yaml:"min_approvals" json:"min_approvals,omitempty"`
	// Timeout, e.g. "24h"; empty waits forever.
	Timeout string `yaml:"timeout" json:"timeout,omitempty"`
	// OnTimeout is applied when the gate times out (default: reject on a
	// promotion, abort elsewhere).
	OnTimeout string `yaml:"on_timeout" json:"on_timeout,omitempty"`
}

// Skew returns MaxClockSkew (default 5 minutes).
func (c Config) Skew() time.Duration {
	if d, err := time.ParseDuration(c.MaxClockSkew); err == nil && d > 0 {
		return d
	}
	return 5 * time.Minute
}

// Watch returns MinWatch (default DefaultMinWatch).
func (c Config) Watch() time.Duration {
	if d, err := time.ParseDuration(c.MinWatch); err == nil && d > 0 {
		return d
	}
	return DefaultMinWatch
}

// MaySkip reports whether an input may turn the safeguard off.
func (c Config) MaySkip(safeguard string) bool { return slices.Contains(c.AllowSkip, safeguard) }

// Validate lists every mistake in the section at once.
func (c Config) Validate() error {
	var errs []string
	if c.MaxClockSkew != "" {
		if d, err := time.ParseDuration(c.MaxClockSkew); err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("policy.max_clock_skew %q: want a positive duration such as 5m", c.MaxClockSkew))
		}
	}
	if c.MinWatch != "" {
		if d, err := time.ParseDuration(c.MinWatch); err != nil || d <= 0 {
			errs = append(errs, fmt.Sprintf("policy.min_watch %q: want a positive duration such as 24h", c.MinWatch))
		}
	}
	for _, s := range c.AllowSkip {
		if !slices.Contains(Safeguards, s) {
			errs = append(errs, fmt.Sprintf("policy.allow_skip: %q is not a safeguard (want some of %s)", s, strings.Join(Safeguards, ", ")))
		}
	}
	for _, name := range sortedKeys(c.Identities) {
		id := c.Identities[name]
		if strings.TrimSpace(name) == "" || strings.HasPrefix(name, "role:") || strings.ContainsAny(name, " \t\n") {
			errs = append(errs, fmt.Sprintf("policy.identities %q: an identity is a name without spaces, not a role", name))
		}
		for _, k := range id.PublicKeys {
			if _, err := identity.ParsePublicKey(k); err != nil {
				errs = append(errs, fmt.Sprintf("policy.identities[%s]: %v", name, err))
			}
		}
	}
	known := func(where, who string) {
		if strings.HasPrefix(who, "role:") {
			if strings.TrimPrefix(who, "role:") == "" {
				errs = append(errs, fmt.Sprintf("%s: empty role", where))
			}
			return
		}
		if _, ok := c.Identities[who]; !ok && !c.TrustClientIdentity {
			errs = append(errs, fmt.Sprintf("%s: %q is not in policy.identities (it could never prove who it is)", where, who))
		}
	}
	for _, o := range c.Operators {
		known("policy.operators", o)
	}
	for _, name := range sortedKeys(c.Environments) {
		e := c.Environments[name]
		where := "policy.environments[" + name + "]"
		if len(e.Approvers) == 0 {
			errs = append(errs, where+".approvers: list at least one identity or role (no approver means nobody approves)")
		}
		for _, a := range e.Approvers {
			known(where+".approvers", a)
		}
		for _, o := range e.Operators {
			known(where+".operators", o)
		}
		if e.MinApprovals < 0 {
			errs = append(errs, where+".min_approvals: must not be negative")
		}
		for _, ch := range e.RemediationChoices {
			if !slices.Contains(RemediationChoices, ch) {
				errs = append(errs, fmt.Sprintf("%s.remediation_choices: %q is not one of %s", where, ch, strings.Join(RemediationChoices, ", ")))
			}
		}
		if len(e.RemediationChoices) > 0 && !slices.Contains(e.RemediationChoices, "abort") {
			errs = append(errs, where+".remediation_choices: abort must stay available")
		}
		for _, ch := range e.TimeoutMayProceed {
			if !slices.Contains(ProceedingChoices, ch) || ch == "approve-override" {
				errs = append(errs, fmt.Sprintf("%s.timeout_may_proceed: %q is not a choice a timeout may apply", where, ch))
			}
		}
		for _, r := range e.Requires {
			if r == name {
				errs = append(errs, where+".requires: an environment cannot require itself")
			} else if _, ok := c.Environments[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s.requires: %q is not a policy environment", where, r))
			}
		}
		for _, kind := range sortedKeys(e.Gates) {
			g := e.Gates[kind]
			gw := where + ".gates[" + kind + "]"
			if !slices.Contains(GateKinds, kind) {
				errs = append(errs, fmt.Sprintf("%s: want one of %s", gw, strings.Join(GateKinds, ", ")))
			}
			for _, a := range g.Approvers {
				known(gw+".approvers", a)
			}
			if g.Timeout != "" {
				if d, err := time.ParseDuration(g.Timeout); err != nil || d <= 0 {
					errs = append(errs, fmt.Sprintf("%s.timeout %q: want a positive duration such as 24h", gw, g.Timeout))
				}
			}
			if slices.Contains(ProceedingChoices, g.OnTimeout) && !slices.Contains(e.TimeoutMayProceed, g.OnTimeout) {
				errs = append(errs, fmt.Sprintf("%s.on_timeout %q proceeds: list it in timeout_may_proceed to allow that", gw, g.OnTimeout))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid policy: %s", strings.Join(errs, "; "))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
