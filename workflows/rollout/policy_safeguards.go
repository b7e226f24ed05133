package rollout

// Safeguards: the runbook's perf phase, its 24-hour watch, the last
// environment's maintenance window and its full backup run in every
// rollout unless the input's skip turns one off and the worker's
// policy.allow_skip lets it. Rollouts started before (histories without
// the safeDefaultsVersion marker) keep the old opt-in meaning of
// perf.enabled and monitor.enabled. A child rollout (a fleet's, or any
// other workflow's) follows the same rule; children started before
// childSafeguardsVersion ran without the safeguards.

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/report"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// safeDefaultsVersion marks histories in which the safeguards are on unless
// skipped (WithSafeDefaults) and the worker's policy checks every skip.
const safeDefaultsVersion = "defaults-safeguards"

// childSafeguardsVersion marks child rollouts (started by a fleet or any
// other workflow) that run the safeguards as a top-level rollout does;
// children recorded before it followed their parent's input alone.
const childSafeguardsVersion = "fleetsafe-child-safeguards"

// safeDefaultsApply: this run applies the safe defaults and the policy's
// allow_skip check. Only a child asks for childSafeguardsVersion, so
// top-level histories replay unchanged.
func safeDefaultsApply(ctx workflow.Context, info *workflow.Info) bool {
	if info.ParentWorkflowExecution != nil && workflow.GetVersion(ctx, childSafeguardsVersion, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	return workflow.GetVersion(ctx, safeDefaultsVersion, workflow.DefaultVersion, 1) == 1
}

// Skips reports whether the input's skip lists the safeguard.
func (in Input) Skips(safeguard string) bool { return slices.Contains(in.Skip, safeguard) }

// WithSafeDefaults is the input as a rollout with safeguards runs it: the
// perf phase and the watch are on unless skip lists them (the sections
// only configure them). A dry run changes nothing, so it is returned as is.
func WithSafeDefaults(in Input) Input {
	if in.DryRun {
		return in
	}
	if in.Skips(policy.SafeguardPerf) {
		if in.Perf != nil {
			p := *in.Perf
			p.Enabled = false
			in.Perf = &p
		}
	} else {
		p := PerfInput{}
		if in.Perf != nil {
			p = *in.Perf
		}
		p.Enabled = true
		in.Perf = &p
	}
	in.Monitor.Enabled = !in.Skips(policy.SafeguardMonitor)
	return in
}

// SafeguardsOff are the safeguards the input turns off, in policy.Safeguards
// order (what the status and the report's first lines name).
func SafeguardsOff(in Input) []string {
	var off []string
	for _, s := range policy.Safeguards {
		// A window given is kept even when skip lists it.
		if s == policy.SafeguardWindow && len(in.Environments) > 0 && in.Environments[len(in.Environments)-1].MaintenanceWindow != nil {
			continue
		}
		if in.Skips(s) {
			off = append(off, s)
		}
	}
	return off
}

// skipProblems names skip entries that are not safeguards: a misspelled
// name is refused rather than ignored.
func skipProblems(in Input) []string {
	var errs []string
	for _, s := range in.Skip {
		if !slices.Contains(policy.Safeguards, s) {
			errs = append(errs, fmt.Sprintf("skip: %q is not a safeguard (want some of %s)", s, strings.Join(policy.Safeguards, ", ")))
		}
	}
	return errs
}

// safeguardDescription says what turning a safeguard off gives up.
var safeguardDescription = map[string]string{
	policy.SafeguardPerf:       "the perf phase (baseline and with-FKs workload before promotion)",
	policy.SafeguardMonitor:    "the watch after the last environment",
	policy.SafeguardWindow:     "the last environment's maintenance window",
	policy.SafeguardFullBackup: "the last environment's full backup (the environment's backup setting applies)",
}

// SafeguardText is one line per safeguard the input turns off, for the
// report's first lines and the start command.
func SafeguardText(off []string) []string {
	out := make([]string, 0, len(off))
	for _, s := range off {
		out = append(out, fmt.Sprintf("%s off: %s is skipped", s, safeguardDescription[s]))
	}
	return out
}

// SafeguardProblems checks an input (already through WithSafeDefaults)
// against the worker's policy: each skip must be allowed, the last
// environment needs a maintenance window unless the window is skipped,
// and the watch lasts at least policy.min_watch. Dry runs change nothing
// and are not checked.
func SafeguardProblems(cfg policy.Config, in Input) []string {
	return safeguardProblems(cfg, in, false)
}

// safeguardProblems: fleet checks a fleet at its start, its environments
// being its targets: each target's child has it as its last environment,
// so each needs the fleet's maintenance_window.
func safeguardProblems(cfg policy.Config, in Input, fleet bool) []string {
	if in.DryRun || len(in.Environments) == 0 {
		return nil
	}
	var errs []string
	allowed := approval.NoneIfEmpty(cfg.AllowSkip)
	for _, s := range in.Skip {
		if slices.Contains(policy.Safeguards, s) && !cfg.MaySkip(s) {
			errs = append(errs, fmt.Sprintf("skip: %q would turn off %s; this worker's policy does not allow that (policy.allow_skip: %s)", s, safeguardDescription[s], allowed))
		}
	}
	lastIdx := len(in.Environments) - 1
	last := in.Environments[lastIdx]
	// skip: [window] only stops requiring one: a window given is kept.
	switch {
	case in.Skips(policy.SafeguardWindow):
	case fleet:
		if slices.ContainsFunc(in.Environments, func(e EnvironmentInput) bool { return e.MaintenanceWindow == nil }) {
			errs = append(errs, `maintenance_window: each target of a fleet is the last environment of its own rollout and needs one (e.g. {"start":"02:00","duration":"2h","timezone":"UTC"}); only where policy.allow_skip lists window may skip: [window] go without one`)
		}
	case last.MaintenanceWindow == nil:
		errs = append(errs, fmt.Sprintf("environments[%d] (%s): the last environment needs a maintenance_window (e.g. {\"start\":\"02:00\",\"duration\":\"2h\",\"timezone\":\"UTC\"}); only where policy.allow_skip lists window may skip: [window] go without one", lastIdx, last.Name))
	}
	if in.Monitor.Enabled {
		d := 24 * time.Hour // runMonitor's default
		if v, err := time.ParseDuration(in.Monitor.Duration); err == nil && v > 0 {
			d = v
		}
		if min := cfg.Watch(); d < min {
			errs = append(errs, fmt.Sprintf("monitor.duration %s is shorter than this worker's minimum watch (policy.min_watch %s)", d, min))
		}
	}
	return errs
}

// fullBackup: the last environment is dumped whole unless skipped.
func (w *rollout) fullBackup(last bool) bool {
	return w.safeguards && last && !w.in.Skips(policy.SafeguardFullBackup)
}

// writeRunbookHeader puts at the top of the report, where nobody can miss
// them, the safeguards this rollout ran without and the rollback it
// rehearsed.
func (s *Status) writeRunbookHeader(b *strings.Builder) {
	if len(s.SafeguardsOff) > 0 {
		b.WriteString("> **Safeguards off** (input skip, allowed by the worker's policy.allow_skip):\n")
		for _, line := range SafeguardText(s.SafeguardsOff) {
			b.WriteString("> - " + line + "\n")
		}
		b.WriteString("\n")
	}
	for _, env := range s.EnvironmentOrder {
		if rh := s.Environments[env].Rehearsal; rh != nil {
			fmt.Fprintf(b, "**Rollback rehearsed** in %s before the next environment (%s): %d dropped, %d added again, %d validated again.\n\n",
				report.Text(env), rh.Ended.Sub(rh.Started).Round(time.Second), len(rh.Dropped), len(rh.Reapplied), len(rh.Revalidated))
		}
	}
}
