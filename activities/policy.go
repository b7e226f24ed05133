package activities

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// ResolvePolicy checks a rollout's input against this worker's policy and
// configuration and returns the effective policy (public keys only), or a
// non-retryable PolicyError naming every problem: nothing has changed yet.
func (a *Activities) ResolvePolicy(ctx context.Context, req rollout.PolicyRequest) (*approval.EffectivePolicy, error) {
	eff, err := rollout.ResolvePolicy(a.Config.Policy, req, a.SlackSigner, time.Now())
	problems := a.unfitFor(req.Input, req.GateEnvironments)
	if err != nil {
		problems = append([]string{err.Error()}, problems...)
	}
	if len(problems) > 0 {
		return nil, temporal.NewNonRetryableApplicationError(strings.Join(problems, "; "), rollout.ErrTypePolicy, nil)
	}
	return eff, nil
}

// unfitFor names what an input asks of this worker that its configuration
// cannot give: an environment without a database, a watch without metric
// sources, a perf workload it does not know. Each would otherwise fail
// hours later, after changes and approvals; here it fails before anything
// runs. Gate-only environments (a fleet's waves) need no database.
func (a *Activities) unfitFor(in rollout.Input, gateOnly []string) []string {
	if a.Config == nil {
		return nil
	}
	var problems []string
	configured := a.Config.EnvironmentNames()
	for _, e := range in.Environments {
		if _, ok := a.Config.Environments[e.Name]; !ok && !slices.Contains(gateOnly, e.Name) {
			problems = append(problems, fmt.Sprintf("environment %q is not configured on this worker (configured: %s)", e.Name, strings.Join(configured, ", ")))
		}
	}
	if in.DryRun || len(in.Environments) == 0 {
		return problems
	}
	if in.Monitor.Enabled {
		last := in.Environments[len(in.Environments)-1].Name
		mon := NewMonitorActivities(a, a.Config.Monitor)
		sources := mon.Config
		problems = append(problems, mon.requiredRuleProblems(in, last)...)
		if len(in.Monitor.Sources) == 0 && len(sources.DefaultSources(last)) == 0 {
			problems = append(problems, fmt.Sprintf("monitor.enabled: environment %q has no monitor sources on this worker (monitor.sources with environment: %s, or smoke_checks), so the watch could never pass; configure one or turn the watch off (skip: [\"monitor\"], where policy.allow_skip lists monitor)", last, last))
		}
		for _, name := range in.Monitor.Sources {
			if _, ok := sources.Sources[name]; !ok {
				problems = append(problems, fmt.Sprintf("monitor.sources: %q is not a monitor source of this worker (configured: %s)", name, strings.Join(slices.Sorted(maps.Keys(sources.Sources)), ", ")))
			}
		}
	}
	if p := in.Perf; p != nil && p.Enabled && p.Workload != "" && p.Workload != rollout.PerfDefaultWorkload {
		if _, ok := a.Config.PerfWorkloadFile(p.Workload); !ok {
			problems = append(problems, fmt.Sprintf("perf.workload: %q is not configured on this worker (configured: %s)", p.Workload, strings.Join(append(a.Config.PerfWorkloadNames(), rollout.PerfDefaultWorkload+" (built in)"), ", ")))
		}
	}
	return problems
}
