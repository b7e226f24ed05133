package rollout

// The production watch that keeps watching while a person decides: an
// investigate or inconclusive outcome opens a gate and the watch goes on,
// so a rollback row (latency, error rate, smoke) still rolls back while
// the gate is open, closing it with the reason. The gate has a timeout
// even when the approval policy gives it none, and the watch never ends
// "passed" with a gate open.

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/watch"
)

// monitorKeepsWatchingVersion marks histories in which the watch goes on
// while its gate is open.
const monitorKeepsWatchingVersion = "watch-keeps-watching"

// DefaultInvestigateTimeout is how long a monitor gate waits for a person
// when neither the approval policy nor the input gives it a timeout.
const DefaultInvestigateTimeout = 4 * time.Hour

// ActorMonitor decides a monitor gate when a rollback row fires while it
// is open.
const ActorMonitor = "monitor"

// monitorChild is one running monitor child.
type monitorChild struct {
	n      int
	id     string
	cancel workflow.CancelFunc
	done   bool
	out    watch.Outcome
	err    error
}

// monitorGate is the open monitor gate and its waiter.
type monitorGate struct {
	g     *approval.Gate
	round int // index in res.Rounds of the outcome that opened it
	what  string
	out   watch.Outcome
	done  bool
	dec   approval.Decision
	err   error
}

func (w *rollout) watchThroughGates(ctx workflow.Context, env string, req watch.Request, res *MonitorResult,
	publish func(), stopped func() (MonitorResult, error)) (MonitorResult, error) {
	req.ReportTo, req.Thread, req.WatchStarted = w.id, w.thread, res.Started
	// Every checkpoint of the watch: each rule's source, figure and state.
	rulesCh := workflow.GetSignalChannel(ctx, watch.SignalRules)
	workflow.Go(ctx, func(g workflow.Context) {
		for {
			var rep watch.RulesReport
			if !rulesCh.Receive(g, &rep) {
				return
			}
			at := rep.At
			res.Rules, res.RulesAt = rep.Rules, &at
			w.setMonitorState(*res)
		}
	})

	n := 0
	var child *monitorChild
	start := func() {
		n++
		c := &monitorChild{n: n, id: fmt.Sprintf("%s/monitor-%d", w.id, n)}
		cctx, cancel := workflow.WithCancel(ctx)
		c.cancel = cancel
		cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
			WorkflowID:          c.id,
			WaitForCancellation: true,
			StaticSummary:       fmt.Sprintf("monitor %s until %s (run %d)", env, req.Deadline.UTC().Format(time.RFC3339), n),
		})
		f := workflow.ExecuteChildWorkflow(cctx, watch.WorkflowName, req)
		workflow.Go(ctx, func(g workflow.Context) {
			c.err = f.Get(g, &c.out)
			c.done = true
		})
		child = c
	}
	stopChild := func() {
		if child == nil {
			return
		}
		c := child
		c.cancel()
		_ = workflow.Await(ctx, func() bool { return c.done })
		child = nil
	}
	var gate *monitorGate
	windowOver := false
	// Rules whose gate is open: the children hold them (watch.Request.Hold).
	var holds []string

	start()
	for {
		err := workflow.Await(ctx, func() bool {
			return (child != nil && child.done) || (gate != nil && gate.done) || w.stop != nil
		})
		if err != nil {
			stopChild()
			return MonitorResult{}, err
		}
		if w.stop != nil {
			stopChild()
			if gate != nil {
				// The gate's waiter sees the stop and cancels the gate.
				_ = workflow.Await(ctx, func() bool { return gate.done })
			}
			return stopped()
		}

		if child != nil && child.done {
			c := child
			child = nil
			c.cancel()
			out := childOutcome(c, req)
			round := monitorRound(c.n, out)
			now := workflow.Now(ctx)
			w.event(ctx, env, PhaseMonitor, fmt.Sprintf("monitor run %d: %s — %s", c.n, out.Status, out.Reason))
			if len(out.Rules) > 0 {
				res.Rules, res.RulesAt = out.Rules, &now
			}
			res.Rounds = append(res.Rounds, round)
			switch out.Status {
			case watch.OutcomeClean:
				if gate == nil {
					res.Status, res.Reason, res.Ended = MonitorPassed, out.Reason, now
					res.Rule, res.Figures, res.FiredAt = "", nil, nil
					res.GateDeadline, res.GateOnTimeout = nil, ""
					publish()
					return *res, nil
				}
				// Not a pass: the gate's question is still open.
				windowOver = true
				res.Status = MonitorWaiting
				res.Reason = fmt.Sprintf("the watch window ended %s with gate %s still open (%s): the watch does not pass until it is decided%s",
					out.Deadline.UTC().Format(time.RFC3339), gate.g.ID, gate.what, gateTimeoutText(gate.g))
				w.event(ctx, env, PhaseMonitor, res.Reason)
				publish()
				continue
			case watch.OutcomeRollback:
				res.Status, res.Ended = MonitorRollback, now
				res.Rule, res.Figures, res.FiredAt = out.Rule, out.NotifyFigures, round.At
				res.Reason = fmt.Sprintf("matrix row %s fired at %s: %s; figures: %s", out.Rule, monitorTime(out.At, now), out.Reason, figuresText(out.NotifyFigures))
				if gate != nil {
					w.closeMonitorGate(ctx, gate, fmt.Sprintf("rollback row %s fired while the gate was open: %s", out.Rule, out.Reason))
					res.Rounds[gate.round].Decision = fmt.Sprintf("%s by %s", approval.ChoiceRollback, ActorMonitor)
					res.Reason += fmt.Sprintf(" (while gate %s was open for %s)", gate.g.ID, gate.what)
				}
				res.GateDeadline, res.GateOnTimeout = nil, ""
				publish()
				return *res, nil
			}

			// Investigate, inconclusive (or anything unexpected): a person
			// decides, and the watch goes on meanwhile.
			what := out.Rule
			if what == "" {
				what = out.Status
			}
			hold := out.Rule
			if out.Status != watch.OutcomeInvestigate || hold == "" {
				hold = monitor.HoldInconclusive
			}
			if !slices.Contains(holds, hold) {
				holds = append(holds, hold)
			}
			if gate == nil {
				gate = w.openMonitorGate(ctx, env, out, what, len(res.Rounds)-1)
				res.Rule, res.Figures, res.FiredAt = out.Rule, out.NotifyFigures, round.At
				res.GateDeadline, res.GateOnTimeout = gate.g.Deadline, gate.g.Rule.OnTimeout
			} else {
				text := fmt.Sprintf("while gate %s is open: monitor %s (%s): %s; figures: %s", gate.g.ID, out.Status, what, out.Reason, figuresText(out.NotifyFigures))
				w.event(ctx, env, PhaseMonitor, text)
				w.notify(ctx, notify.Event{Kind: notify.KindPhase, Environment: env, Phase: PhaseMonitor, Text: text})
			}
			next := out.Resume(req)
			next.Hold = slices.Clone(holds)
			switch {
			case !now.Before(next.Deadline):
				windowOver = true
				res.Reason = fmt.Sprintf("the watch window ended %s with gate %s still open (%s): the watch does not pass until it is decided%s",
					next.Deadline.UTC().Format(time.RFC3339), gate.g.ID, gate.what, gateTimeoutText(gate.g))
			case out.State.Checks <= stateChecks(req):
				// The watcher checked nothing (it failed at once): starting
				// it again would spin. The gate's choice decides.
				res.Reason = fmt.Sprintf("gate %s is open (%s); the watcher could not watch (%s): not watching until the gate is decided%s",
					gate.g.ID, gate.what, out.Reason, gateTimeoutText(gate.g))
			default:
				req = next
				start()
				res.Reason = fmt.Sprintf("gate %s is open (%s); every rule is still watched until %s, and a rollback row still rolls back%s",
					gate.g.ID, gate.what, req.Deadline.UTC().Format(time.RFC3339), gateTimeoutText(gate.g))
			}
			res.Status = MonitorWaiting
			publish()
			continue
		}

		if gate != nil && gate.done {
			mg := gate
			gate = nil
			res.GateDeadline, res.GateOnTimeout = nil, ""
			if mg.err != nil {
				stopChild()
				if w.stop != nil {
					return stopped()
				}
				return MonitorResult{}, mg.err
			}
			dec, g, out := mg.dec, mg.g, mg.out
			res.Rounds[mg.round].Decision = fmt.Sprintf("%s by %s", dec.Action, dec.Actor)
			now := workflow.Now(ctx)
			switch dec.Action {
			case approval.ChoiceRollback, approval.ChoiceReject:
				stopChild()
				res.Status, res.Ended = MonitorRollback, now
				res.Rule, res.Figures = out.Rule, out.NotifyFigures
				res.Reason = fmt.Sprintf("%s chose rollback at gate %s after %s at %s: %s; figures: %s", dec.Actor, g.ID, mg.what, monitorTime(out.At, now),
					out.Reason, figuresText(out.NotifyFigures))
				kind := approval.UpdateRollback
				if g.Status == approval.GateTimedOut {
					// Nobody decided: the monitor's own rollback, naming its rule.
					kind = "monitor"
					res.Reason = fmt.Sprintf("gate %s timed out (%s) after %s at %s → rollback: %s; figures: %s", g.ID, dec.Reason, mg.what, monitorTime(out.At, now),
						out.Reason, figuresText(out.NotifyFigures))
				}
				publish()
				w.stop = &stopRequest{kind: kind, in: approval.ControlInput{Actor: dec.Actor, Reason: fmt.Sprintf("%s (monitor %s: %s)", approval.OrNoReason(dec.Reason), out.Status, mg.what), Via: dec.Via}, rollback: true}
				return MonitorResult{}, errStopped
			case approval.ChoiceAbort:
				stopChild()
				res.Status, res.Ended = MonitorAborted, now
				res.Reason = fmt.Sprintf("gate %s: %s by %s (%s); the watch stops and the constraints stay", g.ID, dec.Action, dec.Actor, approval.OrNoReason(dec.Reason))
				publish()
				w.stop = &stopRequest{kind: approval.UpdateAbort, in: approval.ControlInput{Actor: dec.Actor, Reason: dec.Reason, Via: dec.Via}}
				return MonitorResult{}, errStopped
			}
			res.Rule, res.Figures, res.FiredAt = "", nil, nil
			if windowOver && child == nil {
				res.Status, res.Ended = MonitorPassed, now
				res.Reason = fmt.Sprintf("the watch window ended %s; every rule was watched to the end while gate %s was open, and %s chose %s", req.Deadline.UTC().Format(time.RFC3339), g.ID, dec.Actor, dec.Action)
				publish()
				return *res, nil
			}
			holds, req.Hold = nil, nil
			if child == nil {
				// The watcher had stopped; the person's continue restarts it
				// where it stopped.
				start()
			} else if err := workflow.SignalExternalWorkflow(ctx, child.id, "", watch.SignalRelease, nil).Get(ctx, nil); err != nil {
				w.event(ctx, env, PhaseMonitor, fmt.Sprintf("the watch could not be told that gate %s closed (%v); its held rules stay held until its run ends", g.ID, err))
			}
			res.Status = MonitorWatching
			res.Reason = fmt.Sprintf("%s chose %s at gate %s; watching until %s", dec.Actor, dec.Action, g.ID, req.Deadline.UTC().Format(time.RFC3339))
			w.event(ctx, env, PhaseMonitor, res.Reason)
			publish()
		}
	}
}

// childOutcome is a finished child's outcome; a failed child is
// inconclusive with the carried material, never a pass.
func childOutcome(c *monitorChild, req watch.Request) watch.Outcome {
	out := c.out
	if c.err != nil {
		out = watch.Outcome{Status: watch.OutcomeInconclusive, Reason: "the monitor failed: " + c.err.Error() + "; no data is not a pass",
			Deadline: req.Deadline, Baseline: req.Baseline, Progress: req.Progress, Digests: req.Digests}
		if req.State != nil {
			out.State = *req.State
		}
	}
	if out.Deadline.IsZero() {
		out.Deadline = req.Deadline
	}
	return out
}

func stateChecks(req watch.Request) int {
	if req.State == nil {
		return 0
	}
	return req.State.Checks
}

// openMonitorGate opens the investigate gate for out and starts its
// waiter. A gate the approval policy gives no timeout gets the monitor's:
// monitor.investigate_timeout (default 4h), then rollback.
func (w *rollout) openMonitorGate(ctx workflow.Context, env string, out watch.Outcome, what string, round int) *monitorGate {
	summary := monitorGateSummary(out)
	g := w.openGate(ctx, notify.GateInvestigate, env, fmt.Sprintf("monitor of %s: %s (%s)", env, out.Status, what), summary,
		[]string{approval.ChoiceContinue, approval.ChoiceRollback}, &notify.Gate{Investigate: &notify.InvestigateData{Rule: what, Figures: out.NotifyFigures}})
	if g.Deadline == nil {
		d := DefaultInvestigateTimeout
		if v, err := time.ParseDuration(w.in.Monitor.InvestigateTimeout); err == nil && v > 0 {
			d = v
		}
		dl := g.OpenedAt.Add(d)
		g.Deadline = &dl
		g.Rule.Timeout, g.Rule.OnTimeout = d.String(), approval.ChoiceRollback
	}
	g.Summary += fmt.Sprintf("\nthe watch goes on while this gate is open: a rollback row still rolls back%s", gateTimeoutText(g))
	g.Detail.Summary = g.Summary
	mg := &monitorGate{g: g, round: round, what: what, out: out}
	workflow.Go(ctx, func(gctx workflow.Context) {
		mg.dec, mg.err = w.awaitGate(gctx, g)
		mg.done = true
	})
	return mg
}

// closeMonitorGate closes an open gate because a rollback row fired, and
// waits for its waiter to report the decision.
func (w *rollout) closeMonitorGate(ctx workflow.Context, mg *monitorGate, reason string) {
	if mg.g.Status == approval.GateOpen {
		d := approval.Decision{GateID: mg.g.ID, Action: approval.ChoiceRollback, Actor: ActorMonitor, Via: ActorMonitor, Reason: reason, Time: workflow.Now(ctx)}
		mg.g.Status, mg.g.Decision = approval.GateDecided, &d
		w.Decisions = append(w.Decisions, d)
		w.event(ctx, mg.g.Environment, "gate", fmt.Sprintf("gate %s closed by the monitor → rollback: %s", mg.g.ID, reason))
	}
	_ = workflow.Await(ctx, func() bool { return mg.done })
}

func gateTimeoutText(g *approval.Gate) string {
	if g.Deadline == nil {
		return ""
	}
	return fmt.Sprintf("; without a decision by %s it applies %s", g.Deadline.UTC().Format(time.RFC3339), g.Rule.OnTimeout)
}

// monitorGateSummary is what the person deciding reads: why, the
// figures, what is missing, every rule's state, and what each choice does.
func monitorGateSummary(out watch.Outcome) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nfigures: %s\nthe watch ends %s; continue keeps watching with the same baseline and counters, rollback drops this rollout's constraints",
		out.Reason, figuresText(out.NotifyFigures), out.Deadline.UTC().Format(time.RFC3339))
	if len(out.Missing) > 0 {
		var miss []string
		//workflowcheck:ignore (sorted)
		for _, k := range slices.Sorted(maps.Keys(out.Missing)) {
			miss = append(miss, k+": "+out.Missing[k])
		}
		b.WriteString("\nno data: " + strings.Join(miss, "; "))
	}
	if len(out.Uncovered) > 0 {
		b.WriteString("\nrows no source measures: " + strings.Join(out.Uncovered, ", "))
	}
	return b.String()
}
