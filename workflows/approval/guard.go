package approval

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/mdtext"
	"github.com/fkrollout/fkrollout/internal/policy"
)

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
	Approval Policy `json:"approval"`
	// EnvOperators are the operators of each environment (on top of
	// Approval.Operators).
	EnvOperators map[string][]string `json:"env_operators,omitempty"`
	// RemediationChoices and TimeoutMayProceed per environment.
	RemediationChoices map[string][]string `json:"remediation_choices,omitempty"`
	TimeoutMayProceed  map[string][]string `json:"timeout_may_proceed,omitempty"`
	// PerfEnvironments may run the perf phase.
	PerfEnvironments []string `json:"perf_environments,omitempty"`
	// RehearseRollback: the worker's policy has every rollout rehearse its
	// rollback in the first environment before the next one.
	RehearseRollback bool `json:"rehearse_rollback,omitempty"`
	// RequesterVerified: the requester signed the start. Otherwise every
	// proceeding choice needs two distinct approvers, because the
	// requester could be any one of them.
	RequesterVerified bool `json:"requester_verified"`
	// Notes explain what the worker changed or assumed.
	Notes []string `json:"notes,omitempty"`
}

// IsRole reports whether an approver entry names a role ("role:dba").
func IsRole(s string) bool { return strings.HasPrefix(s, "role:") }

// ContainsFold reports whether list holds s, ignoring case and spaces.
func ContainsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(strings.TrimSpace(x), strings.TrimSpace(s)) })
}

// NoneIfEmpty joins a list for a message, "none" when it is empty.
func NoneIfEmpty(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// SortedRuleKeys are the rule keys in a stable order (map order is random,
// workflow code must not depend on it).
func SortedRuleKeys(m map[string]GateRule) []string {
	keys := make([]string, 0, len(m))
	//workflowcheck:ignore (sorted below)
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Authenticate proves who sent a request: the claim's actor when the proof
// verifies with that identity's key, or with the worker's Slack signer
// (which vouches for the Slack user, the identity it maps to and the roles
// of the user groups). Roles otherwise come from the policy, never from the
// client. Without a proof only development mode believes the client.
func (p *EffectivePolicy) Authenticate(c identity.Claim, proof *identity.Proof, now time.Time) (actor string, roles []string, err error) {
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

// Guard is the trust state every workflow with gates keeps: the effective
// policy (nil in histories recorded before it existed: the input's rules
// apply unchanged) and the nonces of signed requests already seen.
type Guard struct {
	// Policy is nil in histories recorded before the worker policy existed.
	Policy *EffectivePolicy
	nonces map[string]time.Time
	// DroppedRefusals counts record-refusal signals without a valid proof.
	DroppedRefusals int
}

// Check authenticates a request and refuses a nonce seen before. It does
// not change state: validators call it.
func (g *Guard) Check(c identity.Claim, proof *identity.Proof, now time.Time) (string, []string, error) {
	if g.Policy == nil {
		if strings.TrimSpace(c.Actor) == "" {
			return "", nil, fmt.Errorf("actor is required")
		}
		return strings.TrimSpace(c.Actor), c.Roles, nil
	}
	actor, roles, err := g.Policy.Authenticate(c, proof, now)
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

// Remember records a used nonce and forgets those old enough that their
// signature would be stale anyway.
func (g *Guard) Remember(proof *identity.Proof, now time.Time) {
	if proof == nil || g.Policy == nil {
		return
	}
	if g.nonces == nil {
		g.nonces = map[string]time.Time{}
	}
	skew, _ := time.ParseDuration(g.Policy.MaxClockSkew)
	// Deleting expired nonces gives the same map in any order.
	//workflowcheck:ignore
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

// Strict reports whether proven identities and the worker's policy govern
// this run. Histories recorded before the policy existed, and development
// mode, keep the old rules: an empty approver list admits anyone.
func (g *Guard) Strict() bool { return g.Policy != nil && !g.Policy.TrustClientIdentity }

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

func (p *EffectivePolicy) View() *PolicyView {
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
	for _, k := range SortedRuleKeys(v.Gates) {
		r := v.Gates[k]
		timeout := "waits"
		if r.Timeout != "" {
			timeout = r.Timeout + " → " + cmp.Or(r.OnTimeout, "conservative")
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", mdtext.TableCell(k), mdtext.TableCell(NoneIfEmpty(r.Approvers)), max(r.MinApprovals, 1), mdtext.TableCell(timeout))
	}
	fmt.Fprintf(&b, "\nOperators (pause, abort, roll back): %s\n", mdtext.TableCell(NoneIfEmpty(v.Operators)))
	for _, n := range v.Notes {
		fmt.Fprintf(&b, "\n- %s", mdtext.TableCell(n))
	}
	b.WriteString("\n")
	return b.String()
}

// TimeoutMayApply reports whether a timed-out gate in env may apply
// choice: a conservative choice always; a proceeding one only where the
// worker's policy lists it.
func (g *Guard) TimeoutMayApply(env, choice string) bool {
	if g.Policy == nil || !slices.Contains(policy.ProceedingChoices, choice) {
		return true
	}
	return slices.Contains(g.Policy.TimeoutMayProceed[env], choice)
}

// AdmitDecision authenticates a decision and returns it with the proven
// actor and roles (claimed ones are replaced). It changes no state.
func (g *Guard) AdmitDecision(ctx workflow.Context, workflowID string, in DecisionInput) (DecisionInput, error) {
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	actor, roles, err := g.Check(DecisionClaim(workflowID, runID, in), in.Proof, workflow.Now(ctx))
	if err != nil {
		return in, err
	}
	in.Actor, in.Roles = actor, roles
	if g.Policy != nil && in.Proof != nil && in.Proof.KeyID != identity.SlackSigner {
		in.SlackUser = ""
	}
	return in, nil
}

// AdmitControl authenticates a control request.
func (g *Guard) AdmitControl(ctx workflow.Context, workflowID, kind string, in ControlInput) (ControlInput, []string, error) {
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	actor, roles, err := g.Check(ControlClaim(workflowID, runID, kind, in), in.Proof, workflow.Now(ctx))
	if err != nil {
		return in, nil, err
	}
	in.Actor = actor
	return in, roles, nil
}

// MayControl says whether actor may pause, resume, abort or roll back under
// the worker's policy: operators always; for pause, resume and abort
// without rollback also the verified requester and anyone who may approve
// a gate of the rollout. Dropping constraints by request is for operators.
func (g *Guard) MayControl(kind string, rollback bool, actor string, roles []string, requester string, envs []string) error {
	p := g.Policy
	ops := slices.Clone(p.Approval.Operators)
	for _, e := range envs {
		ops = append(ops, p.EnvOperators[e]...)
	}
	if ContainsFold(ops, actor) {
		return nil
	}
	if rollback || kind == UpdateRollback {
		return fmt.Errorf("%s may not roll back: dropping constraints on request is for operators (%s); approvers choose rollback at a gate", actor, NoneIfEmpty(ops))
	}
	if p.RequesterVerified && strings.EqualFold(actor, requester) {
		return nil
	}
	for _, k := range SortedRuleKeys(p.Approval.Gates) {
		if _, env, _ := strings.Cut(k, "/"); slices.Contains(envs, env) && p.Approval.Gates[k].Admits(actor, roles, true) {
			return nil
		}
	}
	return fmt.Errorf("%s may not %s this rollout: only operators (%s), the verified requester and its approvers may", actor, kind, NoneIfEmpty(ops))
}

// AdmitRefusal checks a record-refusal signal: under the worker's policy
// only the Slack handler or the refused person's own key may write one.
func (g *Guard) AdmitRefusal(ctx workflow.Context, workflowID string, r Refusal) bool {
	if g.Policy == nil || (g.Policy.TrustClientIdentity && r.Proof == nil) {
		return true
	}
	if r.Proof == nil {
		return false
	}
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	_, _, err := g.Policy.Authenticate(RefusalClaim(workflowID, runID, r), r.Proof, workflow.Now(ctx))
	return err == nil
}

// The claims every client signs. Clients (CLI, Slack) and the validators
// build them here, so a signed request and its check can never disagree on
// which fields count.

// DecisionClaim is what a decide request signs.
func DecisionClaim(workflowID, runID string, in DecisionInput) identity.Claim {
	return identity.Claim{Action: UpdateDecide, WorkflowID: workflowID, RunID: runID, GateID: in.GateID, Choice: in.Choice,
		Actor: in.Actor, Roles: in.Roles, SlackUser: in.SlackUser, Reason: in.Reason, Constraints: in.Constraints, Via: in.Via}
}

// ControlClaim is what a pause, resume, abort or rollback request signs.
func ControlClaim(workflowID, runID, kind string, in ControlInput) identity.Claim {
	return identity.Claim{Action: kind, WorkflowID: workflowID, RunID: runID, Actor: in.Actor, Reason: in.Reason,
		Rollback: in.Rollback, Via: in.Via}
}

// RefusalClaim is what a record-refusal signal signs.
func RefusalClaim(workflowID, runID string, r Refusal) identity.Claim {
	return identity.Claim{Action: SignalRecordRefusal, WorkflowID: workflowID, RunID: runID, GateID: r.GateID,
		Actor: r.Actor, Reason: r.Reason, Via: r.Signal}
}

// Nonces are the single-use nonces remembered (with their signing time):
// a run that continues as new carries them, so a signed request used
// before cannot be replayed in the next run.
func (g *Guard) Nonces() map[string]time.Time { return maps.Clone(g.nonces) }

// RestoreNonces takes back the nonces a previous run carried.
func (g *Guard) RestoreNonces(n map[string]time.Time) { g.nonces = maps.Clone(n) }
