package main

// Fleet commands: start an FKFleetRollout (one FKRollout child per target
// database, in waves) and show its status. Wave gates are decided with the
// ordinary approve / reject / decide commands on the fleet id (they send
// the same decide update); a database's own gates on its child id,
// <fleet-id>/<target>. See docs/FLEET.md.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

func fleetCommands() []command {
	return []command{
		{name: "fleet-start", summary: "start a fleet rollout over many databases in waves: --plan F --targets a,b,c [--canary 1] [--batch 5]", run: cmdFleetStart},
		{name: "fleet-status", summary: "show a fleet rollout: waves, databases, child ids, gate, failures (--json)", run: cmdFleetStatus},
	}
}

// fleetOptions are the flags of fleet-start: the fleet's own, plus the
// subset of start's flags that make sense for every target.
type fleetOptions struct {
	start                 startOptions
	targets               string
	canary, batch, budget int
	minApprovals          int
	wait                  bool
	every                 time.Duration
	key                   string
	set                   map[string]bool
}

// inputOnlyFlags shape the policy; with --input they belong in the file.
var inputOnlyFlags = []string{"approvers", "min-approvals", "gate-timeout", "window", "window-now", "monitor", "monitor-interval", "monitor-baseline", "perf", "perf-workload"}

func parseFleetStart(args []string, stderr io.Writer) (fleetOptions, temporalFlags, error) {
	var o fleetOptions
	var tf temporalFlags
	s := &o.start
	fs := newFlags("fleet-start", stderr)
	fs.StringVar(&s.planFile, "plan", "", "plan file: migration SQL or plan YAML (required unless --input has one)")
	fs.StringVar(&s.inputFile, "input", "", "full fleet input JSON (FleetInput, as pasted into the Temporal UI); --plan, --targets, --canary, --batch, --failure-budget, --requester and --dry-run override it")
	fs.StringVar(&s.id, "id", "", "fleet (workflow) id (default fkfleet-<time>); children are <id>/<target>")
	fs.StringVar(&s.requester, "requester", defaultActor(), "who requests the fleet (four-eyes: cannot approve it)")
	fs.StringVar(&o.targets, "targets", "", "comma-separated target databases: environment names the workers are configured with (required unless --input has them)")
	fs.IntVar(&o.canary, "canary", 0, fmt.Sprintf("databases in the first wave (default %d)", fleet.DefaultCanary))
	fs.IntVar(&o.batch, "batch", 0, fmt.Sprintf("databases in each later wave (default %d)", fleet.DefaultBatch))
	fs.IntVar(&o.budget, "failure-budget", 0, fmt.Sprintf("stop starting databases once this many failed (default %d)", fleet.DefaultFailureBudget))
	fs.StringVar(&s.approvers, "approvers", "", "comma-separated approver identities or role:<name> (default: anyone but the requester)")
	fs.IntVar(&o.minApprovals, "min-approvals", 1, "distinct approvers needed to open the next wave")
	fs.StringVar(&s.gateTimeout, "gate-timeout", "", "gate timeout, e.g. 24h (default: wait); a wave gate then rejects")
	fs.StringVar(&s.window, "window", "", "maintenance window of every target: HH:MM/DURATION[/TZ], e.g. 02:00/2h/Asia/Jakarta")
	fs.BoolVar(&s.windowNow, "window-now", false, "a 2h maintenance window that opens now (demos)")
	fs.StringVar(&s.monitor, "monitor", "", "watch each database this long after it is done, e.g. 1h (default: off)")
	fs.StringVar(&s.monitorInterval, "monitor-interval", "", "time between monitor checks (default 5m)")
	fs.StringVar(&s.monitorBaseline, "monitor-baseline", "", "how long each baseline is measured before the deploy (default 5m)")
	fs.StringVar(&s.perf, "perf", "", "run the perf phase in the canary, each measured run lasting this long, e.g. 30s (default: off)")
	fs.StringVar(&s.perfWorkload, "perf-workload", "demo", "perf workload name from the worker configuration")
	fs.StringVar(&s.taskQueue, "task-queue", envOr("FKROLLOUT_TASK_QUEUE", rollout.DefaultTaskQueue), "worker task queue")
	fs.BoolVar(&s.dryRun, "dry-run", false, "checks, statistics and audit only on every target; nothing changes (no wave gates)")
	fs.BoolVar(&o.wait, "wait", false, "follow the fleet until it ends")
	fs.DurationVar(&o.every, "every", 2*time.Second, "poll interval of --wait")
	fs.StringVar(&o.key, "key", os.Getenv("FKROLLOUT_KEY"), "the requester's ed25519 private key (FKROLLOUT_KEY): signs the start")
	tf.register(fs)
	if err := parse(fs, args); err != nil {
		return o, tf, err
	}
	if fs.NArg() > 0 {
		return o, tf, usageError{msg: fmt.Sprintf("fleet-start takes flags only (unexpected %q)", fs.Arg(0))}
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, tf, nil
}

// buildFleetInput turns the flags (or an input file and overriding flags)
// into the fleet's input and checks it as the workflow will.
func buildFleetInput(o fleetOptions, now time.Time) (fleet.Input, error) {
	var in fleet.Input
	if o.start.inputFile != "" {
		for _, name := range inputOnlyFlags {
			if o.set[name] {
				return in, fmt.Errorf("--%s cannot be combined with --input: set it in %s", name, o.start.inputFile)
			}
		}
		b, err := os.ReadFile(o.start.inputFile)
		if err != nil {
			return in, fmt.Errorf("--input: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return in, fmt.Errorf("--input %s: %w", o.start.inputFile, err)
		}
		if o.start.planFile != "" {
			text, format, err := readPlanFile(o.start.planFile)
			if err != nil {
				return in, err
			}
			in.Plan, in.PlanFormat = text, format
		}
		if o.set["requester"] || in.Requester == "" {
			in.Requester = o.start.requester
		}
		if o.start.dryRun {
			in.DryRun = true
		}
	} else {
		// start's input builder, with the targets as its environments;
		// the window it puts on the last environment applies to all.
		so := o.start
		so.envs = o.targets
		so.minProd = 1
		if len(splitList(so.envs)) == 0 {
			so.envs = "-" // the target check below names the problem
		}
		base, err := buildInput(so, now)
		if err != nil {
			return in, err
		}
		in = fleet.Input{Plan: base.Plan, PlanFormat: base.PlanFormat, Requester: base.Requester, Approval: base.Approval, Thresholds: base.Thresholds,
			Monitor: base.Monitor, Perf: base.Perf, DryRun: base.DryRun}
		if n := len(base.Environments); n > 0 {
			in.MaintenanceWindow = base.Environments[n-1].MaintenanceWindow
		}
		if o.minApprovals > 1 {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/" + fleet.GateEnvironment: {
				Approvers: in.Approval.Default.Approvers, MinApprovals: o.minApprovals, Timeout: o.start.gateTimeout}}
		}
	}
	if o.start.inputFile == "" || o.set["targets"] {
		in.Targets = splitList(o.targets)
		if len(in.Targets) == 0 {
			return in, errors.New("--targets is required: comma-separated environment names, e.g. tenant_a,tenant_b,tenant_c")
		}
	}
	if o.start.inputFile == "" || o.set["canary"] {
		in.Canary = o.canary
	}
	if o.start.inputFile == "" || o.set["batch"] {
		in.BatchSize = o.batch
	}
	if o.start.inputFile == "" || o.set["failure-budget"] {
		in.FailureBudget = o.budget
	}
	if strings.TrimSpace(in.Plan) == "" {
		return in, errors.New("--plan is required (a migration .sql or a plan .yaml)")
	}
	if err := in.Validate(); err != nil {
		return in, err
	}
	return in, nil
}

// splitList splits "a, b,,c" into [a b c], keeping each name as written.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func cmdFleetStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, tf, err := parseFleetStart(args, stderr)
	if err != nil {
		return err
	}
	in, err := buildFleetInput(o, time.Now())
	if err != nil {
		return usageError{msg: err.Error()}
	}
	s, err := loadSigner(o.key, in.Requester)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	c, ns, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	id := o.start.id
	if id == "" {
		id = "fkfleet-" + time.Now().UTC().Format("20060102-150405")
	}
	in.RequesterProof = s.sign(fleet.StartClaim(id, in))
	waves := fleet.Waves(in.Targets, orDefaultInt(in.Canary, fleet.DefaultCanary), orDefaultInt(in.BatchSize, fleet.DefaultBatch))
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       id,
		TaskQueue:                                o.start.taskQueue,
		WorkflowIDReusePolicy:                    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("fkrollout fleet by %s: %d databases in %d waves", in.Requester, len(in.Targets), len(waves)),
	}, fleet.WorkflowName, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return fmt.Errorf("a workflow with id %q already exists; pick another --id", id)
		}
		return fmt.Errorf("start fleet: %w", err)
	}
	fmt.Fprintf(stdout, "fleet started:  %s\n", run.GetID())
	fmt.Fprintf(stdout, "Temporal UI:    %s\n", fleetUILink(tf.uiURL, ns, run.GetID()))
	for i, w := range waves {
		fmt.Fprintf(stdout, "wave %d/%d:       %s\n", i+1, len(waves), strings.Join(w, ", "))
	}
	fmt.Fprintf(stdout, "children:       %s/<target> (starter status %s/%s)\n", run.GetID(), run.GetID(), in.Targets[0])
	if !o.wait {
		fmt.Fprintf(stdout, "follow it with: starter fleet-status %s\n", run.GetID())
		return nil
	}
	return fleetWatch(ctx, c, run.GetID(), stdout, o.every)
}

func orDefaultInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

// fleetUILink escapes the id: child ids contain a slash.
func fleetUILink(base, ns, id string) string {
	return strings.TrimRight(base, "/") + "/namespaces/" + url.PathEscape(ns) + "/workflows/" + url.PathEscape(id)
}

func cmdFleetStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var tf temporalFlags
	var asJSON, children bool
	fs := newFlags("fleet-status", stderr)
	fs.BoolVar(&asJSON, "json", false, "print the fleet's full status as JSON")
	fs.BoolVar(&children, "children", true, "query each running child for its live phase and open gates")
	tf.register(fs)
	pos, err := interleave(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "usage: fleet-status <fleet-id> [--json] [--children=false]"}
	}
	c, ns, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := queryFleet(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, st)
	}
	live := map[string]*rollout.Status{}
	if children {
		for _, t := range st.Targets {
			if t.State == rollout.StateRunning {
				if cs, err := queryStatus(ctx, c, t.ChildID); err == nil {
					live[t.Name] = cs
				}
			}
		}
	}
	printFleet(stdout, st, live)
	fmt.Fprintf(stdout, "UI: %s\n", fleetUILink(tf.uiURL, ns, pos[0]))
	return nil
}

func queryFleet(ctx context.Context, c client.Client, id string) (*fleet.Status, error) {
	v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("no fleet with id %q", id)
		}
		return nil, fmt.Errorf("query status of %s: %w", id, err)
	}
	var raw json.RawMessage
	if err := v.Get(&raw); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", id, err)
	}
	var probe struct {
		FleetID string `json:"fleet_id"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.FleetID == "" {
		return nil, fmt.Errorf("%s is not a fleet rollout (use starter status %s)", id, id)
	}
	var st fleet.Status
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return &st, nil
}

// printFleet is the human table; live holds the running children's own
// status (phase, open gates), when queried.
func printFleet(w io.Writer, st *fleet.Status, live map[string]*rollout.Status) {
	fmt.Fprintf(w, "fleet %s: %s (%s) requested by %s\n", st.FleetID, st.State, st.Phase, st.Requester)
	fmt.Fprintf(w, "  %d databases in %d waves: %d succeeded, %d failed of budget %d", len(st.Targets), len(st.Waves), st.Succeeded, st.Failed, st.FailureBudget)
	if st.PlanName != "" || st.ConstraintCount > 0 {
		fmt.Fprintf(w, "; plan %s (%d constraints)", orDefault(st.PlanName, "-"), st.ConstraintCount)
	}
	if st.DryRun {
		fmt.Fprint(w, "; dry run")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tTARGET\tSTATE\tPHASE\tVALIDATED\tDEBT\tCHILD WORKFLOW\tNOTE")
	var gates []string
	for _, t := range st.Targets {
		phase, note := orDefault(t.Phase, "-"), t.Error
		if cs, ok := live[t.Name]; ok {
			phase = cs.Phase
			for _, g := range cs.OpenGates {
				note = strings.TrimSpace(note + " open gate " + g.ID)
				gates = append(gates, fmt.Sprintf("  %s: gate %s (%s) — starter decide %s %s <%s>", t.Name, g.ID, g.Title, t.ChildID, g.ID, strings.Join(g.Choices, "|")))
			}
		}
		wave := fmt.Sprint(t.Wave)
		if t.Wave == 1 && len(st.Waves) > 0 && st.Waves[0].Canary {
			wave += " (canary)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", wave, t.Name, t.State, phase, t.Validated, t.Debt, t.ChildID, oneLine(note))
	}
	_ = tw.Flush()
	if g := st.OpenGate; g != nil {
		fmt.Fprintf(w, "open gate %s: %s\n", g.ID, g.Title)
		fmt.Fprintf(w, "  choices %s", strings.Join(g.Choices, "|"))
		if g.Rule.MinApprovals > 1 {
			fmt.Fprintf(w, " · %d approvals needed, %d vote(s) so far", g.Rule.MinApprovals, len(g.Votes))
		}
		if g.Deadline != nil {
			fmt.Fprintf(w, " · times out %s → %s", g.Deadline.Local().Format(time.RFC3339), g.Rule.OnTimeout)
		}
		fmt.Fprintf(w, "\n  starter approve %s %s --reason ...\n", st.FleetID, g.ID)
	}
	if len(gates) > 0 {
		fmt.Fprintln(w, "databases waiting for a decision:")
		for _, l := range gates {
			fmt.Fprintln(w, l)
		}
	}
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "decisions:")
		for _, d := range st.Decisions {
			fmt.Fprintf(w, "  %s  %s %s by %s (%s)\n", d.Time.Local().Format("2006-01-02 15:04:05"), orDefault(d.GateID, "fleet"), d.Action, d.Actor, orDefault(d.Reason, "no reason given"))
		}
	}
	if st.Error != "" {
		fmt.Fprintf(w, "error: %s\n", st.Error)
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// fleetWatch prints new timeline lines until the fleet ends.
func fleetWatch(ctx context.Context, c client.Client, id string, stdout io.Writer, every time.Duration) error {
	printed := 0
	for {
		st, err := queryFleet(ctx, c, id)
		if err != nil {
			return err
		}
		start := max(printed-st.TimelineDropped, 0)
		for _, e := range st.Timeline[min(start, len(st.Timeline)):] {
			fmt.Fprintf(stdout, "%s  %-11s %s\n", e.Time.Local().Format("15:04:05"), e.Phase, e.Message)
		}
		printed = st.TimelineDropped + len(st.Timeline)
		if st.Terminal() {
			fmt.Fprintln(stdout)
			printFleet(stdout, st, nil)
			switch st.State {
			case rollout.StateCompleted, rollout.StateCompletedWithDebt, rollout.StateDryRunDone:
				return nil
			}
			return fmt.Errorf("fleet ended %s", st.State)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
