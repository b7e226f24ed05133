package rollout

// The interleaved perf comparison (GetVersion perf-interleaved): instead of
// a baseline run before the constraints and a with-FKs run after validation
// (two runs on different data), the workload runs in slices alternating
// without and with the plan's keys in one session, right after the backup.
// The "with" slices carry the keys added NOT VALID under a temporary name
// (a NOT VALID key checks every write as a validated one does), the
// "without" slices have them dropped; the database is left as found. A
// rollback verdict therefore stops the rollout before anything is applied.
// A verdict needs the whole confidence interval past a limit; an interval
// that straddles one measures another round, up to perf.max_rounds, and then
// leaves the decision to a person with the numbers.

import (
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/perf"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// ActPerfInterleave measures one round of interleaved slices.
const ActPerfInterleave = "PerfInterleave"

// perfInterleavedVersion: rollouts started before it keep the two-run path.
const perfInterleavedVersion = "perf-interleaved"

const (
	perfDefaultPairs     = 6
	perfDefaultMaxRounds = 3
	perfMaxPairs         = 50
	perfMaxRounds        = 10
)

// PerfInterleaveInput is one round (ActPerfInterleave →
// PerfInterleaveResult): Pairs pairs of slices of Slice each (or Iterations
// operations each), after one unmeasured Warmup.
type PerfInterleaveInput struct {
	Environment  string            `json:"environment"`
	RolloutID    string            `json:"rollout_id"`
	FKs          []plan.ForeignKey `json:"fks"`
	Workload     string            `json:"workload,omitempty"`
	WorkloadYAML string            `json:"workload_yaml,omitempty"`
	Workers      int               `json:"workers"`
	Slice        string            `json:"slice,omitempty"`
	Iterations   int               `json:"iterations,omitempty"`
	Warmup       string            `json:"warmup,omitempty"`
	Pairs        int               `json:"pairs"`
	// FirstSlice continues the A B B A pattern of earlier rounds.
	FirstSlice int    `json:"first_slice"`
	Seed       uint64 `json:"seed"`
}

// PerfInterleaveResult is one round's slices and which keys were measured.
type PerfInterleaveResult struct {
	Slices []perf.Slice `json:"slices"`
	// Toggled: added NOT VALID for the with-FKs slices only. Present:
	// already on the database, so on both sides. Skipped: not measurable
	// (reason given).
	Toggled []string `json:"toggled,omitempty"`
	Present []string `json:"present,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
}

// PerfInterleaveSummary is the status's account of the measurement.
type PerfInterleaveSummary struct {
	Rounds  int      `json:"rounds"`
	Slices  int      `json:"slices"`
	Slice   string   `json:"slice,omitempty"`
	Toggled []string `json:"toggled,omitempty"`
	Present []string `json:"present,omitempty"`
	Skipped []string `json:"skipped,omitempty"`
}

// perfInterleaveValidate names the problems of the interleaved fields.
func perfInterleaveValidate(p *PerfInput) []string {
	var errs []string
	if p.Pairs != 0 && (p.Pairs < 2 || p.Pairs > perfMaxPairs) {
		errs = append(errs, fmt.Sprintf("perf.pairs %d: want 2..%d (an interval needs two pairs of slices)", p.Pairs, perfMaxPairs))
	}
	if p.MaxRounds < 0 || p.MaxRounds > perfMaxRounds {
		errs = append(errs, fmt.Sprintf("perf.max_rounds %d: want 1..%d", p.MaxRounds, perfMaxRounds))
	}
	return errs
}

func (w *rollout) perfInterleaveInput(env string, round int) PerfInterleaveInput {
	run := w.perfRunInput(env, "")
	pairs := w.in.Perf.Pairs
	if pairs == 0 {
		pairs = perfDefaultPairs
	}
	in := PerfInterleaveInput{Environment: env, RolloutID: w.id, FKs: w.fks, Workload: run.Workload, WorkloadYAML: run.WorkloadYAML,
		Workers: run.Workers, Warmup: run.Warmup, Pairs: pairs, FirstSlice: (round - 1) * 2 * pairs, Seed: w.perfSeed(env) + uint64(round)}
	// duration and iterations size a round: split over its slices.
	if run.Iterations > 0 {
		in.Iterations = max(run.Iterations/(2*pairs), 1)
	} else if d, err := time.ParseDuration(run.Duration); err == nil {
		in.Slice = (d / time.Duration(2*pairs)).Round(time.Millisecond).String()
	}
	return in
}

// perfSeed: the bootstrap and the operation mix are repeatable per rollout
// and environment.
func (w *rollout) perfSeed(env string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(w.id + "/" + env))
	return h.Sum64()
}

func (w *rollout) perfMaxRounds() int {
	if n := w.in.Perf.MaxRounds; n > 0 {
		return n
	}
	return perfDefaultMaxRounds
}

// runPerfInterleaved measures rounds until the verdict is settled or the
// budget is spent, then acts on it (before any constraint is applied).
func (w *rollout) runPerfInterleaved(ctx workflow.Context, env string) error {
	w.enter(ctx, env, PhasePerf)
	pr := w.perfReport(env)
	pr.Method = perf.MethodInterleaved
	th := w.perfThresholds()
	// Measured before remediation: the first audit's orphans are still there.
	iv := perf.Interval{Seed: w.perfSeed(env), PendingOrphans: totalOrphans(w.report(env).FirstAudit)}
	var all []perf.Slice
	var cmp perf.Comparison
	maxRounds := w.perfMaxRounds()
	for round := 1; round <= maxRounds; round++ {
		in := w.perfInterleaveInput(env, round)
		size := fmt.Sprintf("%d workers, %d pairs of %s slices", in.Workers, in.Pairs, in.Slice)
		if in.Iterations > 0 {
			size = fmt.Sprintf("%d workers, %d pairs of %d-operation slices", in.Workers, in.Pairs, in.Iterations)
		}
		var res PerfInterleaveResult
		if err := w.step(ctx, env, fmt.Sprintf("perf round %d/%d: workload %s without/with the constraints, interleaved (%s)", round, maxRounds, w.perfWorkloadLabel(), size),
			ActPerfInterleave, perfActivity, in, &res); err != nil {
			return err
		}
		all = append(all, res.Slices...)
		if err := workflow.SideEffect(ctx, func(workflow.Context) any { return perf.CompareInterleaved(all, th, iv) }).Get(&cmp); err != nil {
			return fmt.Errorf("perf comparison: %w", err)
		}
		cmp.Rounds = round
		pr.Interleave = &PerfInterleaveSummary{Rounds: round, Slices: len(all), Slice: in.Slice, Toggled: res.Toggled, Present: res.Present, Skipped: res.Skipped}
		pr.Comparison = &cmp
		pr.Markdown = w.perfMarkdownOf(pr)
		if cmp.Settled || round == maxRounds {
			pr.Verdict, pr.Reason = cmp.Verdict, cmp.Reason
			w.setPerfReport(env, pr)
			break
		}
		// No verdict in the status while another round is coming.
		w.setPerfReport(env, pr)
		w.event(ctx, env, PhasePerf, fmt.Sprintf("perf round %d: %s — measuring again", round, cmp.Reason))
	}
	w.event(ctx, env, PhasePerf, fmt.Sprintf("perf verdict %s: %s", cmp.Verdict, cmp.Reason))
	w.notify(ctx, notify.Event{Kind: notify.KindPhase, Environment: env, Phase: PhasePerf, Text: fmt.Sprintf("perf in %s: %s — %s", env, cmp.Verdict, cmp.Reason)})

	switch cmp.Verdict {
	case perf.Rollback:
		reason := fmt.Sprintf("perf phase in %s: %s (measured before any constraint was applied: nothing to drop)", env, cmp.Reason)
		w.stop = &stopRequest{kind: "perf", in: approval.ControlInput{Actor: "perf", Reason: reason, Via: "perf"}, rollback: true}
		return errStopped
	case perf.Warn, perf.Inconclusive:
		if w.perfPromotionFollows(env) {
			// The promotion gate carries the numbers and wants an override.
			return nil
		}
		// No promotion follows: ask now, before anything is applied.
		title := fmt.Sprintf("perf %s in %s: %s", perfVerdictWord(cmp.Verdict), env, cmp.Reason)
		d, err := w.askProblem(ctx, env, title, []string{approval.ChoiceApproveOverride, approval.ChoiceAbort})
		if err != nil {
			return err
		}
		if d == approval.ChoiceApproveOverride {
			w.perfRecordOverride(ctx, env, w.lastDecision(approval.ChoiceApproveOverride))
		}
	}
	return nil
}

// perfExplainOnly is the interleaved path's step after validation: the
// EXPLAIN checks (and indexes on request); the verdict is already known.
func (w *rollout) perfExplainOnly(ctx workflow.Context, env string, pr *PerfReport) error {
	ex, err := w.perfExplain(ctx, env)
	if err != nil {
		return err
	}
	pr.Explain = &ex
	pr.Markdown = w.perfMarkdownOf(pr)
	w.setPerfReport(env, pr)
	return nil
}

// perfMarkdownOf is the comparison table, the plan findings and which keys
// were measured how.
func (w *rollout) perfMarkdownOf(pr *PerfReport) string {
	ex := pr.Explain.orEmpty()
	md := perf.Report{Comparison: *pr.Comparison, FKChecks: ex.FKChecks, Queries: ex.Queries, IndexesBuilt: ex.IndexesBuilt}.Markdown()
	if s := pr.Interleave; s != nil {
		var b strings.Builder
		if len(s.Toggled) > 0 {
			fmt.Fprintf(&b, "\nMeasured by adding NOT VALID for the with-FKs slices only: %s.\n", strings.Join(s.Toggled, ", "))
		}
		if len(s.Present) > 0 {
			fmt.Fprintf(&b, "\nAlready on the database, so present on both sides (their cost is in the baseline): %s.\n", strings.Join(s.Present, ", "))
		}
		if len(s.Skipped) > 0 {
			fmt.Fprintf(&b, "\nNot measured: %s.\n", strings.Join(s.Skipped, "; "))
		}
		md += b.String()
	}
	return md
}

func perfVerdictWord(v string) string {
	if v == perf.Warn {
		return "warning"
	}
	return v
}
