package workflows

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
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
}

// EffectivePolicy is the worker's policy for one rollout, tightened by its
// input. It holds only public keys, never a secret, and is recorded in
// history by ActResolvePolicy, so a later configuration change does not
// change the rules of a rollout already running.
type EffectivePolicy struct {
	// TrustClientIdentity (development mode) believes unsigned actors.
	TrustClientIdentity bool   `json:"trust_client_identity,omitempty"`
	MaxClockSkew        string `json:"max_clock_skew"`
	// Identities are the configured identities' public keys and roles.
	Identities map[string]policy.Identity `json:"identities,omitempty"`
	// SlackSigner is the public key of the worker's Slack handler; empty
	// when Slack decisions are off.
	SlackSigner string `json:"slack_signer,omitempty"`
	// Approval holds one rule per "kind/environment"; its default admits
	// nobody.
	Approval ApprovalPolicy `json:"approval"`
	// EnvOperators are the operators of each environment (on top of
	// Approval.Operators).
	EnvOperators map[string][]string `json:"env_operators,omitempty"`
	// RemediationChoices and TimeoutMayProceed per environment.
	RemediationChoices map[string][]string `json:"remediation_choices,omitempty"`
	TimeoutMayProceed  map[string][]string `json:"timeout_may_proceed,omitempty"`
	// PerfEnvironments may run the perf phase.
	PerfEnvironments []string `json:"perf_environments,omitempty"`
	// RequesterVerified: the requester signed the start. Otherwise every
	// proceeding choice needs two distinct approvers, because the
	// requester could be any one of them.
	RequesterVerified bool `json:"requester_verified"`
	// Notes explain what the worker changed or assumed.
	Notes []string `json:"notes,omitempty"`
}

// ResolvePolicy checks in against the worker's policy and returns the
// effective policy. The input may only tighten: approvers it names must be
// approvers under the worker policy, its minimum of approvals can only
// rise, a gate timeout may proceed only where the policy allows it. Every
// problem is named at once. Pure: the activity calls it with the
// configuration; tests call it directly.
func ResolvePolicy(cfg policy.Config, req PolicyRequest, slackSigner string, now time.Time) (*EffectivePolicy, error) {
	in := req.Input
	eff := &EffectivePolicy{
		TrustClientIdentity: cfg.TrustClientIdentity,
		MaxClockSkew:        cfg.Skew().String(),
		Identities:          cfg.Identities,
		SlackSigner:         slackSigner,
		Approval:            ApprovalPolicy{Gates: map[string]GateRule{}},
		EnvOperators:        map[string][]string{},
		RemediationChoices:  map[string][]string{},
		TimeoutMayProceed:   map[string][]string{},
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
					eff.Approval.Gates[kind+"/"+name] = in.Approval.rule(notify.GateKind(kind), name)
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
			if !containsFold(all, o) && !cfg.TrustClientIdentity {
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
			if env != "" && !slices.Contains(eff.PerfEnvironments, env) {
				errs = append(errs, fmt.Sprintf("perf: environment %q may not run the perf phase (its workload writes rows); the worker policy allows it in: %s", env, orNoneList(eff.PerfEnvironments)))
			}
		}
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
		for _, k := range sortedRuleKeys(eff.Approval.Gates) {
			r := eff.Approval.Gates[k]
			if r.MinApprovals < 2 {
				r.MinApprovals = 2
			}
			eff.Approval.Gates[k] = r
		}
	}
	// A rule that can never be met is refused now rather than at its gate.
	for _, k := range sortedRuleKeys(eff.Approval.Gates) {
		r := eff.Approval.Gates[k]
		if cfg.TrustClientIdentity && len(r.Approvers) == 0 {
			continue // development mode: an empty list admits anyone
		}
		if !slices.ContainsFunc(r.Approvers, isRole) && len(r.Approvers) < r.MinApprovals {
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
func tighten(cfg policy.Config, ep policy.Environment, kind, env string, in ApprovalPolicy) (GateRule, []string) {
	base := GateRule{Approvers: ep.Approvers, MinApprovals: max(ep.MinApprovals, 1), AllowRequester: ep.AllowRequester}
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
	if containsFold(approvers, who) {
		return true
	}
	if isRole(who) {
		return false
	}
	for _, role := range cfg.Identities[who].Roles {
		if containsFold(approvers, "role:"+role) {
			return true
		}
	}
	return false
}

func isRole(s string) bool { return strings.HasPrefix(s, "role:") }

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(strings.TrimSpace(x), strings.TrimSpace(s)) })
}

func cmpOr(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}

func orNoneList(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func sortedRuleKeys(m map[string]GateRule) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// authenticate proves who sent a request: the claim's actor when the proof
// verifies with that identity's key, or with the worker's Slack signer
// (which vouches for the Slack user, the identity it maps to and the roles
// of the user groups). Roles otherwise come from the policy, never from the
// client. Without a proof only development mode believes the client.
func (p *EffectivePolicy) authenticate(c identity.Claim, proof *identity.Proof, now time.Time) (actor string, roles []string, err error) {
	if strings.TrimSpace(c.Actor) == "" {
		return "", nil, fmt.Errorf("actor is required")
	}
	if proof == nil && p.TrustClientIdentity {
		return strings.TrimSpace(c.Actor), c.Roles, nil
	}
	if proof == nil {
		return "", nil, fmt.Errorf("%s by %q is not signed: this worker does not believe a name a client sends; decide with `fkrollout %s --key <your key>` or from Slack", c.Action, c.Actor, cliVerb(c.Action))
	}
	skew, _ := time.ParseDuration(p.MaxClockSkew)
	if proof.KeyID == identity.SlackSigner {
		if p.SlackSigner == "" {
			return "", nil, fmt.Errorf("%s by %q is signed by the Slack handler, but Slack decisions are not configured on this worker", c.Action, c.Actor)
		}
		if err := identity.Verify(c, proof, []string{p.SlackSigner}, now, skew); err != nil {
			return "", nil, fmt.Errorf("%s by %q: %w", c.Action, c.Actor, err)
		}
		return strings.TrimSpace(c.Actor), mergeRoles(p.Identities[c.Actor].Roles, c.Roles), nil
	}
	if !strings.EqualFold(proof.KeyID, c.Actor) {
		return "", nil, fmt.Errorf("%s names actor %q but is signed by %q", c.Action, c.Actor, proof.KeyID)
	}
	if c.SlackUser != "" {
		return "", nil, fmt.Errorf("%s by %q: slack_user is accepted only from the worker's Slack handler", c.Action, c.Actor)
	}
	id, ok := p.Identities[c.Actor]
	if !ok {
		return "", nil, fmt.Errorf("%s by %q: not an identity of this worker's policy (policy.identities)", c.Action, c.Actor)
	}
	if err := identity.Verify(c, proof, id.PublicKeys, now, skew); err != nil {
		return "", nil, fmt.Errorf("%s by %q: %w", c.Action, c.Actor, err)
	}
	return strings.TrimSpace(c.Actor), id.Roles, nil
}

func mergeRoles(a, b []string) []string {
	out := slices.Clone(a)
	for _, r := range b {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func cliVerb(action string) string {
	if action == UpdateDecide {
		return "decide"
	}
	return action
}

// guard is the trust state every workflow with gates keeps: the effective
// policy (nil in histories recorded before it existed: the input's rules
// apply unchanged) and the nonces of signed requests already seen.
type guard struct {
	pol    *EffectivePolicy
	nonces map[string]time.Time
	// droppedRefusals counts record-refusal signals without a valid proof.
	droppedRefusals int
}

// check authenticates a request and refuses a nonce seen before. It does
// not change state: validators call it.
func (g *guard) check(c identity.Claim, proof *identity.Proof, now time.Time) (string, []string, error) {
	if g.pol == nil {
		if strings.TrimSpace(c.Actor) == "" {
			return "", nil, fmt.Errorf("actor is required")
		}
		return strings.TrimSpace(c.Actor), c.Roles, nil
	}
	actor, roles, err := g.pol.authenticate(c, proof, now)
	if err != nil {
		return "", nil, err
	}
	if proof != nil {
		if _, seen := g.nonces[nonceKey(proof)]; seen {
			return "", nil, fmt.Errorf("%s by %q: this signed request was already used (replay refused)", c.Action, c.Actor)
		}
	}
	return actor, roles, nil
}

// remember records a used nonce and forgets those old enough that their
// signature would be stale anyway.
func (g *guard) remember(proof *identity.Proof, now time.Time) {
	if proof == nil || g.pol == nil {
		return
	}
	if g.nonces == nil {
		g.nonces = map[string]time.Time{}
	}
	skew, _ := time.ParseDuration(g.pol.MaxClockSkew)
	for k, t := range g.nonces {
		if now.Sub(t) > 2*skew {
			delete(g.nonces, k)
		}
	}
	g.nonces[nonceKey(proof)] = proof.SignedAt
}

// nonceKey identifies a signed request. The key id is not signed and
// authenticate matches it to the actor ignoring case, so it is folded here:
// otherwise "Alice@…" would replay a request "alice@…" signed.
func nonceKey(proof *identity.Proof) string {
	return strings.ToLower(proof.KeyID) + "/" + proof.Nonce
}

// strict reports whether proven identities and the worker's policy govern
// this run. Histories recorded before the policy existed, and development
// mode, keep the old rules: an empty approver list admits anyone.
func (g *guard) strict() bool { return g.pol != nil && !g.pol.TrustClientIdentity }

// PolicyView is the effective policy as status and report show it: the
// rules, not the keys.
type PolicyView struct {
	// Mode is "strict" (signed decisions) or "development" (client-named
	// actors believed).
	Mode               string              `json:"mode"`
	RequesterVerified  bool                `json:"requester_verified"`
	Gates              map[string]GateRule `json:"gates"`
	Operators          []string            `json:"operators,omitempty"`
	EnvOperators       map[string][]string `json:"env_operators,omitempty"`
	RemediationChoices map[string][]string `json:"remediation_choices,omitempty"`
	TimeoutMayProceed  map[string][]string `json:"timeout_may_proceed,omitempty"`
	PerfEnvironments   []string            `json:"perf_environments,omitempty"`
	Notes              []string            `json:"notes,omitempty"`
}

func (p *EffectivePolicy) view() *PolicyView {
	if p == nil {
		return nil
	}
	mode := "strict"
	if p.TrustClientIdentity {
		mode = "development"
	}
	return &PolicyView{Mode: mode, RequesterVerified: p.RequesterVerified, Gates: p.Approval.Gates, Operators: p.Approval.Operators,
		EnvOperators: p.EnvOperators, RemediationChoices: p.RemediationChoices, TimeoutMayProceed: p.TimeoutMayProceed,
		PerfEnvironments: p.PerfEnvironments, Notes: p.Notes}
}

// Markdown is the policy section of the completion report.
func (v *PolicyView) Markdown() string {
	if v == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("## Approval policy\n\n")
	if v.Mode == "development" {
		b.WriteString("⚠️ **Development mode**: actors named by clients were believed without a signature.\n\n")
	} else {
		b.WriteString("Every decision and control request was signed (an approver's key or the worker's Slack handler).\n\n")
	}
	if v.RequesterVerified {
		b.WriteString("Requester: verified (signed start).\n\n")
	} else {
		b.WriteString("Requester: **not verified** (unsigned start): proceeding choices needed two distinct approvers.\n\n")
	}
	b.WriteString("| Gate | Approvers | Distinct approvals | Timeout |\n|---|---|---|---|\n")
	for _, k := range sortedRuleKeys(v.Gates) {
		r := v.Gates[k]
		timeout := "waits"
		if r.Timeout != "" {
			timeout = r.Timeout + " → " + cmpOrString(r.OnTimeout, "conservative")
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", mdtext.TableCell(k), mdtext.TableCell(orNoneList(r.Approvers)), max(r.MinApprovals, 1), mdtext.TableCell(timeout))
	}
	fmt.Fprintf(&b, "\nOperators (pause, abort, roll back): %s\n", mdtext.TableCell(orNoneList(v.Operators)))
	for _, n := range v.Notes {
		fmt.Fprintf(&b, "\n- %s", mdtext.TableCell(n))
	}
	b.WriteString("\n")
	return b.String()
}

func cmpOrString(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
