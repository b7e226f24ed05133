package activities

// PerfInterleave is one round of the interleaved perf comparison: the
// workload runs in slices alternating without and with the plan's keys,
// added NOT VALID under a temporary name for the with-FKs slices and
// dropped for the others, under the worker's lock policy. The database is
// left as found, also when the activity is cancelled; a retry first drops
// what a killed attempt left behind.

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/perf/interleave"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// PerfInterleaveProgress is PerfInterleave's heartbeat detail.
type PerfInterleaveProgress struct {
	Slice    int     `json:"slice"`
	Of       int     `json:"of"`
	Side     string  `json:"side"` // "without FKs" or "with FKs"
	ElapsedS float64 `json:"elapsed_s"`
}

// PerfInterleave measures one round and returns its slices.
func (a *Activities) PerfInterleave(ctx context.Context, in rollout.PerfInterleaveInput) (rollout.PerfInterleaveResult, error) {
	var out rollout.PerfInterleaveResult
	if err := a.perfAllowed(in.Environment, in.WorkloadYAML); err != nil {
		return out, err
	}
	w, label, err := a.perfWorkload(in.Workload)
	if err != nil {
		return out, err
	}
	o, err := interleaveOptions(in)
	if err != nil {
		return out, err
	}
	o.Lock = a.Lock
	load, err := a.perfPool(ctx, in.Environment)
	if err != nil {
		return out, err
	}
	// DDL through the environment's main DSN (the table owner's rights),
	// never the perf role, which only writes rows.
	ddl, err := a.pool(ctx, in.Environment)
	if err != nil {
		return out, err
	}
	start := time.Now()
	hb := a.startHeartbeat(ctx, PerfInterleaveProgress{Of: 2 * o.Pairs, Side: "warm-up"})
	defer hb.end()
	o.Progress = func(p interleave.Progress) {
		side := "without FKs"
		if p.WithFKs {
			side = "with FKs"
		}
		hb.set(PerfInterleaveProgress{Slice: p.Slice, Of: p.Of, Side: side, ElapsedS: time.Since(start).Seconds()})
	}
	res, err := interleave.Run(ctx, ddl, load, w, in.FKs, o)
	if err != nil {
		return out, a.perfErr(fmt.Errorf("perf interleaved round of %s on %s: %w", label, in.Environment, err))
	}
	activityLogger(ctx, a.Log).Info("perf interleaved round", "environment", in.Environment, "workload", label,
		"slices", len(res.Slices), "toggled", len(res.Toggled), "present", len(res.Present))
	return rollout.PerfInterleaveResult{Slices: res.Slices, Toggled: res.Toggled, Present: res.Present, Skipped: res.Skipped}, nil
}

func interleaveOptions(in rollout.PerfInterleaveInput) (interleave.Options, error) {
	o := interleave.Options{Workers: in.Workers, Pairs: in.Pairs, Iterations: in.Iterations, FirstSlice: in.FirstSlice, Seed: in.Seed}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{{"slice", in.Slice, &o.Slice}, {"warmup", in.Warmup, &o.Warmup}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 0 {
			return o, temporal.NewNonRetryableApplicationError(fmt.Sprintf("perf %s %q is not a duration", d.name, d.v), steps.ErrTypePlan, nil)
		}
		*d.dst = v
	}
	if o.Pairs < 2 {
		return o, temporal.NewNonRetryableApplicationError(fmt.Sprintf("perf: %d pairs of slices; an interval needs at least 2", o.Pairs), steps.ErrTypePlan, nil)
	}
	if o.Slice <= 0 && o.Iterations <= 0 {
		return o, temporal.NewNonRetryableApplicationError("perf: set a slice duration or an iteration count", steps.ErrTypePlan, nil)
	}
	return o, nil
}
