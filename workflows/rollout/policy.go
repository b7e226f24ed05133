package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// ActResolvePolicy is the first activity of a rollout or fleet: the worker
// checks the input against its own policy and returns the effective policy
// (PolicyRequest → EffectivePolicy), or a non-retryable PolicyError naming
// every problem before anything changes.
const ActResolvePolicy = "ResolvePolicy"

// ErrTypePolicy fails a rollout whose input the worker's policy refuses.
const ErrTypePolicy = "PolicyError"

// policyVersion marks histories whose gates follow the worker's policy
// (ActResolvePolicy) and whose decisions must be signed.
const policyVersion = "worker-policy"

// PolicyRequest asks the worker for the effective policy of a rollout.
type PolicyRequest struct {
	WorkflowID string `json:"workflow_id"`
	// ParentWorkflowID is the fleet that started this rollout, if any.
	ParentWorkflowID string `json:"parent_workflow_id,omitempty"`
	Input            Input  `json:"input"`
	// GateEnvironments are extra gate environments that need rules (a
	// fleet's wave gates: "fleet").
	GateEnvironments []string `json:"gate_environments,omitempty"`
	// Safeguards: the input runs with safe defaults (WithSafeDefaults was
	// applied) and each skip must be allowed (SafeguardProblems).
	Safeguards bool `json:"safeguards,omitempty"`
	// FleetTargets: the environments are a fleet's targets, each rolled out
	// by its own one-environment child, so each runs every safeguard (its
	// perf phase, window, full backup and watch).
	FleetTargets bool `json:"fleet_targets,omitempty"`
}

// ResolvePolicy checks in against the worker's policy and returns the
// effective policy. The input may only tighten: approvers it names must be
// approvers under the worker policy, its minimum of approvals can only
// rise, a gate timeout may proceed only where the policy allows it. Every
// problem is named at once. Pure: the activity calls it with the
// configuration; tests call it directly.
func ResolvePolicy(cfg policy.Config, req PolicyRequest, slackSigner string, now time.Time) (*approval.EffectivePolicy, error) {
	in := req.Input
	eff := &approval.EffectivePolicy{
		TrustClientIdentity: cfg.TrustClientIdentity,
		MaxClockSkew:        cfg.Skew().String(),
		Identities:          cfg.Identities,
		SlackSigner:         slackSigner,
		Approval:            approval.Policy{Gates: map[string]approval.GateRule{}},
		EnvOperators:        map[string][]string{},
		RemediationChoices:  map[string][]string{},
		TimeoutMayProceed:   map[string][]string{},
		RehearseRollback:    cfg.RehearseRollback,
	}
	var errs []string
	if cfg.TrustClientIdentity {
		eff.Notes = append(eff.Notes, "development mode (policy.trust_client_identity): actors named by clients are believed without a signature")
	}
	envs := make([]string, 0, len(in.Environments))
	for _, e := range in.Environments {
		envs = append(envs, e.Name)
	}
	gateEnvs := append(slices.Clone(envs), req.GateEnvironments...)

	// Every environment needs a policy: no approver means nobody approves.
	// In development mode an environment without one keeps the input's rules.
	for i, name := range gateEnvs {
		ep, ok := cfg.Environments[name]
		if !ok {
			if cfg.TrustClientIdentity {
				eff.Notes = append(eff.Notes, fmt.Sprintf("environment %s has no worker policy: the input's approval rules apply (development mode)", name))
				for _, kind := range policy.GateKinds {
					eff.Approval.Gates[kind+"/"+name] = in.Approval.Rule(notify.GateKind(kind), name)
				}
				eff.RemediationChoices[name] = policy.RemediationChoices
				eff.PerfEnvironments = append(eff.PerfEnvironments, name)
				continue
			}
			errs = append(errs, fmt.Sprintf("environment %q has no approval policy on this worker (policy.environments.%s): nobody could approve its gates", name, name))
			continue
		}
		if i < len(envs) {
			for _, r := range ep.Requires {
				if !slices.Contains(envs[:i], r) {
					errs = append(errs, fmt.Sprintf("environment %q requires %q earlier in the same rollout (policy.environments.%s.requires)", name, r, name))
				}
			}
		}
		for _, kind := range policy.GateKinds {
			if kind == string(notify.GatePromotion) && i == 0 {
				continue // nothing is promoted into the first environment
			}
			r, problems := tighten(cfg, ep, kind, name, in.Approval)
			errs = append(errs, problems...)
			eff.Approval.Gates[kind+"/"+name] = r
		}
		eff.EnvOperators[name] = ep.Operators
		eff.RemediationChoices[name] = cmpOr(ep.RemediationChoices, policy.RemediationChoices)
		eff.TimeoutMayProceed[name] = ep.TimeoutMayProceed
		if ep.Perf {
			eff.PerfEnvironments = append(eff.PerfEnvironments, name)
		}
	}

	// Operators: the input may name a subset of the worker's.
	eff.Approval.Operators = cfg.Operators
	if len(in.Approval.Operators) > 0 {
		all := slices.Clone(cfg.Operators)
		for _, name := range gateEnvs {
			all = append(all, cfg.Environments[name].Operators...)
		}
		for _, o := range in.Approval.Operators {
			if !approval.ContainsFold(all, o) && !cfg.TrustClientIdentity {
				errs = append(errs, fmt.Sprintf("approval.operators: %q is not an operator in the worker policy (policy.operators)", o))
			}
		}
		eff.Approval.Operators = in.Approval.Operators
	}

	// No SQL from the input: workloads are named from the worker's
	// configuration, and only where the policy allows the perf phase.
	if p := in.Perf; p != nil {
		if strings.TrimSpace(p.WorkloadYAML) != "" {
			errs = append(errs, "perf.workload_yaml: inline SQL is not accepted from the rollout input; name a workload from the worker configuration (perf.workloads)")
		}
		if p.Enabled && !in.DryRun {
			env := p.Environment
			if env == "" && len(envs) > 0 {
				env = envs[0]
			}
			perfEnvs := []string{env}
			if req.FleetTargets && req.Safeguards {
				// Every child runs its own perf phase in its target.
				perfEnvs = envs
				if p.Environment != "" {
					errs = append(errs, fmt.Sprintf(`perf.environment %q: every target of a fleet runs its own perf phase; leave perf.environment out (or skip: ["perf"] where policy.allow_skip lists perf)`, p.Environment))
				}
			}
			for _, env := range perfEnvs {
				if env != "" && !slices.Contains(eff.PerfEnvironments, env) {
					hint := ""
					if req.Safeguards {
						hint = ` (or skip: ["perf"] where policy.allow_skip lists perf)`
					}
					errs = append(errs, fmt.Sprintf("perf: environment %q may not run the perf phase (its workload writes rows); the worker policy allows it in: %s%s", env, approval.NoneIfEmpty(eff.PerfEnvironments), hint))
				}
			}
		}
	}

	if req.Safeguards {
		errs = append(errs, safeguardProblems(cfg, in, req.FleetTargets)...)
	}

	// The requester is who signed the start, or unverified.
	switch {
	case in.RequesterProof != nil:
		claim, err := startClaimFor(req.WorkflowID, req.ParentWorkflowID, in)
		if err == nil {
			// A fleet verified freshness at its own start; its children
			// start waves later, so only the signature counts for them.
			skew := cfg.Skew()
			if in.FleetScope != nil {
				skew = 365 * 24 * time.Hour
			}
			err = identity.Verify(claim, in.RequesterProof, cfg.Identities[in.Requester].PublicKeys, now, skew)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("requester_proof: %v (requester %q)", err, in.Requester))
		} else if in.RequesterProof.KeyID != in.Requester {
			errs = append(errs, fmt.Sprintf("requester_proof: signed by %q, not by the requester %q", in.RequesterProof.KeyID, in.Requester))
		} else {
			eff.RequesterVerified = true
		}
	case cfg.TrustClientIdentity:
		eff.RequesterVerified = true
	default:
		eff.Notes = append(eff.Notes, fmt.Sprintf("requester %q did not sign the start: every proceeding choice needs at least two distinct approvers", in.Requester))
	}
	if !eff.RequesterVerified {
		for _, k := range approval.SortedRuleKeys(eff.Approval.Gates) {
			r := eff.Approval.Gates[k]
			if r.MinApprovals < 2 {
				r.MinApprovals = 2
			}
			eff.Approval.Gates[k] = r
		}
	}
	// A rule that can never be met is refused now rather than at its gate.
	for _, k := range approval.SortedRuleKeys(eff.Approval.Gates) {
		r := eff.Approval.Gates[k]
		if cfg.TrustClientIdentity && len(r.Approvers) == 0 {
			continue // development mode: an empty list admits anyone
		}
		if !slices.ContainsFunc(r.Approvers, approval.IsRole) && len(r.Approvers) < r.MinApprovals {
			errs = append(errs, fmt.Sprintf("gate %s needs %d distinct approvers but only %d may approve (%s)", k, r.MinApprovals, len(r.Approvers), strings.Join(r.Approvers, ", ")))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("the worker policy refuses this rollout: %s", strings.Join(errs, "; "))
	}
	return eff, nil
}

// tighten is the worker's rule of one gate kind in one environment with the
// input's rule applied on top; problems name what the input tried to loosen.
func tighten(cfg policy.Config, ep policy.Environment, kind, env string, in approval.Policy) (approval.GateRule, []string) {
	base := approval.GateRule{Approvers: ep.Approvers, MinApprovals: max(ep.MinApprovals, 1), AllowRequester: ep.AllowRequester}
	if g, ok := ep.Gates[kind]; ok {
		if len(g.Approvers) > 0 {
			base.Approvers = g.Approvers
		}
		base.MinApprovals = max(base.MinApprovals, g.MinApprovals)
		base.Timeout, base.OnTimeout = g.Timeout, g.OnTimeout
	}
	want, where := in.Default, "approval.default"
	if r, ok := in.Gates[kind+"/"+env]; ok {
		want, where = r, "approval.gates["+kind+"/"+env+"]"
	} else if r, ok := in.Gates[kind]; ok {
		want, where = r, "approval.gates["+kind+"]"
	}
	var problems []string
	eff := base
	if len(want.Approvers) > 0 {
		for _, a := range want.Approvers {
			if !allowedUnder(cfg, base.Approvers, a) {
				problems = append(problems, fmt.Sprintf("%s.approvers: %q may not approve %s gates in %s under the worker policy (allowed: %s)", where, a, kind, env, strings.Join(base.Approvers, ", ")))
			}
		}
		eff.Approvers = want.Approvers
	}
	eff.MinApprovals = max(base.MinApprovals, want.MinApprovals)
	if want.AllowRequester && !base.AllowRequester {
		problems = append(problems, fmt.Sprintf("%s.allow_requester: the worker policy does not let the requester approve in %s", where, env))
	}
	if want.Timeout != "" {
		eff.Timeout = want.Timeout
	}
	if want.OnTimeout != "" {
		eff.OnTimeout = want.OnTimeout
	}
	if slices.Contains(policy.ProceedingChoices, eff.OnTimeout) && !slices.Contains(ep.TimeoutMayProceed, eff.OnTimeout) {
		problems = append(problems, fmt.Sprintf("%s.on_timeout %q would proceed without a person in %s; the worker policy lets a timeout only reject or abort there (policy.environments.%s.timeout_may_proceed)", where, eff.OnTimeout, env, env))
	}
	return eff, problems
}

// allowedUnder: who (an identity or "role:x") is admitted by the worker's
// approver list: named there, or holding a role named there.
func allowedUnder(cfg policy.Config, approvers []string, who string) bool {
	if approval.ContainsFold(approvers, who) {
		return true
	}
	if approval.IsRole(who) {
		return false
	}
	for _, role := range cfg.Identities[who].Roles {
		if approval.ContainsFold(approvers, "role:"+role) {
			return true
		}
	}
	return false
}

func cmpOr(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}
