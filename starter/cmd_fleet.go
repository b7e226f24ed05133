package main

// Fleet commands: start an FKFleetRollout (one FKRollout child per target
// database, in waves) and show its status. Wave gates are decided with the
// ordinary approve / reject / decide commands on the fleet id (they send
// the same decide update); a database's own gates on its child id,
// <fleet-id>/<target>. See docs/FLEET.md.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

func fleetCommands() []*cobra.Command {
	return []*cobra.Command{fleetStartCmd(), fleetStatusCmd()}
}

// fleetOptions are the flags of fleet-start: the fleet's own, plus the
// subset of start's flags that make sense for every target.
type fleetOptions struct {
	start                 startOptions
	targets               string
	canary, batch, budget int
	minApprovals          int
	wait, json            bool
	every                 time.Duration
	key                   string
	set                   map[string]bool
}

// inputOnlyFlags shape the policy; with --input they belong in the file.
var inputOnlyFlags = []string{"approvers", "min-approvals", "gate-timeout", "window", "window-now", "monitor", "monitor-interval", "monitor-baseline", "perf", "perf-workload"}

func fleetStartCmd() *cobra.Command {
	cmd, _, _ := newFleetStartCmd()
	return cmd
}

// newFleetStartCmd also hands back the options the flags fill, for tests
// that build the fleet input from a command line without a server.
func newFleetStartCmd() (*cobra.Command, *fleetOptions, *temporalFlags) {
	o := &fleetOptions{}
	tf := &temporalFlags{}
	s := &o.start
	cmd := &cobra.Command{
		Use:   "fleet-start --plan FILE --targets A,B,C",
		Short: "start a fleet rollout over many databases in waves (one rollout per database)",
		Example: `  fkrollout fleet-start --plan sql/migration.sql --targets tenant_a,tenant_b,tenant_c,tenant_d \
    --canary 1 --batch 2 --failure-budget 1 --requester rita@example.com --approvers alice@example.com,bob@example.com`,
		Args: exactArgs(),
	}
	fs := cmd.Flags()
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
	fs.DurationVar(&s.gateTimeout, "gate-timeout", 0, "gate timeout, e.g. 24h (default: wait); a wave gate then rejects")
	fs.StringVar(&s.window, "window", "", "maintenance window of every target: HH:MM/DURATION[/TZ], e.g. 02:00/2h/Asia/Jakarta (required unless --skip window)")
	fs.BoolVar(&s.windowNow, "window-now", false, "a 2h maintenance window that opens now (demos)")
	fs.DurationVar(&s.monitor, "monitor", 0, "watch each database this long after it is done (default 24h; at least the worker's policy.min_watch; off only with --skip monitor)")
	fs.DurationVar(&s.monitorInterval, "monitor-interval", 0, "time between monitor checks (default 5m)")
	fs.DurationVar(&s.monitorBaseline, "monitor-baseline", 0, "how long each baseline is measured before the deploy (default 5m)")
	fs.DurationVar(&s.perf, "perf", 0, "each database's perf phase measures this long per round of slices without/with the keys (default 30s; off only with --skip perf)")
	fs.StringVar(&s.perfWorkload, "perf-workload", "demo", "perf workload name from the worker configuration")
	fs.StringVar(&s.taskQueue, "task-queue", envOr("FKROLLOUT_TASK_QUEUE", rollout.DefaultTaskQueue), "worker task queue (FKROLLOUT_TASK_QUEUE)")
	fs.StringSliceVar(&s.skip, "skip", nil, "safeguards every database runs without, where the worker's policy.allow_skip lets you: "+strings.Join(policy.Safeguards, ","))
	fs.StringVar(&s.config, "config", "", "worker configuration whose policy the fleet must pass, checked before it starts (as lint --input --fleet --config does)")
	fs.BoolVar(&s.dryRun, "dry-run", false, "checks, statistics and audit only on every target; nothing changes (no wave gates)")
	fs.BoolVar(&o.wait, "wait", false, "follow the fleet until it ends (exit 1 when it does not complete)")
	fs.DurationVar(&o.every, "every", 2*time.Second, "poll interval of --wait")
	fs.BoolVar(&o.json, "json", false, "print the started fleet as JSON (with --wait: its final status; progress goes to stderr)")
	fs.StringVar(&o.key, "key", os.Getenv("FKROLLOUT_KEY"), "the requester's ed25519 private key (FKROLLOUT_KEY): signs the start")
	tf.register(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := o.checkFlags(cmd.Flags()); err != nil {
			return err
		}
		return runFleetStart(cmd.Context(), *o, *tf, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd, o, tf
}

// checkFlags records which flags were given (an --input file gives way
// only to those) and refuses durations that are not positive.
func (o *fleetOptions) checkFlags(fs *pflag.FlagSet) error {
	o.set = map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { o.set[f.Name] = true })
	for _, name := range []string{"gate-timeout", "monitor", "monitor-interval", "monitor-baseline", "perf", "every"} {
		if d, _ := fs.GetDuration(name); o.set[name] && d <= 0 {
			return usageError{msg: fmt.Sprintf("--%s must be a positive duration, got %s", name, d)}
		}
	}
	return nil
}

// buildFleetInput turns the flags (or an input file and overriding flags)
// into the fleet's input and checks it as the workflow will.
func buildFleetInput(o fleetOptions, now time.Time) (fleet.Input, error) {
	var in fleet.Input
	if o.start.inputFile != "" {
		for _, name := range inputOnlyFlags {
			if o.set[name] {
				return in, usageError{msg: fmt.Sprintf("--%s cannot be combined with --input: set it in %s", name, o.start.inputFile)}
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
		if unknown := in.UnknownKeys(); len(unknown) > 0 {
			return in, fmt.Errorf("--input %s: %s", o.start.inputFile, rollout.UnknownKeysProblem(unknown))
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
		for _, sk := range o.start.skip {
			if sk = strings.TrimSpace(sk); sk != "" && !slices.Contains(in.Skip, sk) {
				in.Skip = append(in.Skip, sk)
			}
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
		// The watch, perf and window flags configure each child's
		// safeguards; --skip turns them off (so.skip goes to base.Skip).
		base, err := buildInput(so, now)
		if err != nil {
			return in, err
		}
		in = fleet.Input{Plan: base.Plan, PlanFormat: base.PlanFormat, Requester: base.Requester, Approval: base.Approval, Thresholds: base.Thresholds,
			Monitor: base.Monitor, Perf: base.Perf, DryRun: base.DryRun, Skip: base.Skip}
		if n := len(base.Environments); n > 0 {
			in.MaintenanceWindow = base.Environments[n-1].MaintenanceWindow
		}
		if o.minApprovals > 1 {
			in.Approval.Gates = map[string]approval.GateRule{"promotion/" + fleet.GateEnvironment: {
				Approvers: in.Approval.Default.Approvers, MinApprovals: o.minApprovals, Timeout: durationText(o.start.gateTimeout)}}
		}
	}
	if o.start.inputFile == "" || o.set["targets"] {
		in.Targets = splitList(o.targets)
		if len(in.Targets) == 0 {
			return in, usageError{msg: "--targets is required: comma-separated environment names, e.g. tenant_a,tenant_b,tenant_c"}
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
		return in, usageError{msg: "--plan is required (a migration .sql or a plan .yaml)"}
	}
	if err := in.Validate(); err != nil {
		return in, usageError{msg: err.Error()}
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

func runFleetStart(ctx context.Context, o fleetOptions, tf temporalFlags, stdout, stderr io.Writer) error {
	in, err := buildFleetInput(o, time.Now())
	if err != nil {
		return err
	}
	if err := checkFleetSafeguards(in, o.start.config, stderr, time.Now()); err != nil {
		return err
	}
	s, err := loadSigner(o.key, in.Requester)
	if err != nil {
		return err
	}
	c, ns, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	id := o.start.id
	if id == "" {
		id = "fkfleet-" + time.Now().UTC().Format("20060102-150405")
	}
	in.RequesterProof = s.sign(fleet.StartClaim(id, in))
	waves := fleet.Waves(in.Targets, cmp.Or(in.Canary, fleet.DefaultCanary), cmp.Or(in.BatchSize, fleet.DefaultBatch))
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
	link := fleetUILink(tf.uiURL, ns, run.GetID())
	// With --json stdout carries one document: the start, or with --wait
	// the final status (the timeline goes to stderr).
	human := stdout
	if o.json {
		human = stderr
		if !o.wait {
			return writeJSON(stdout, map[string]any{"fleet_id": run.GetID(), "run_id": run.GetRunID(), "namespace": ns, "ui": link,
				"waves": waves, "children": run.GetID() + "/<target>"})
		}
	}
	fmt.Fprintf(human, "fleet started:  %s\n", run.GetID())
	fmt.Fprintf(human, "Temporal UI:    %s\n", link)
	for i, w := range waves {
		fmt.Fprintf(human, "wave %d/%d:       %s\n", i+1, len(waves), strings.Join(w, ", "))
	}
	fmt.Fprintf(human, "children:       %s/<target> (%s status %s/%s)\n", run.GetID(), programName, run.GetID(), in.Targets[0])
	if !o.wait {
		fmt.Fprintf(human, "follow it with: %s fleet-status %s\n", programName, run.GetID())
		return nil
	}
	var result io.Writer
	if o.json {
		result = stdout
	}
	return fleetWatch(ctx, c, run.GetID(), human, result, o.every)
}

// fleetUILink escapes the id: child ids contain a slash.
func fleetUILink(base, ns, id string) string {
	return strings.TrimRight(base, "/") + "/namespaces/" + url.PathEscape(ns) + "/workflows/" + url.PathEscape(id)
}

func fleetStatusCmd() *cobra.Command {
	var tf temporalFlags
	var asJSON, children bool
	cmd := &cobra.Command{
		Use:     "fleet-status FLEET_ID",
		Short:   "show a fleet rollout: waves, databases, child ids, gate, failures",
		Example: "  fkrollout fleet-status fkfleet-20260501-020000\n  fkrollout fleet-status fkfleet-20260501-020000 --json",
		Args:    exactArgs("FLEET_ID"),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the fleet's full status as JSON")
	cmd.Flags().BoolVar(&children, "children", true, "query each running child for its live phase and open gates")
	tf.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		c, ns, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		st, err := queryFleet(ctx, c, args[0])
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
		fmt.Fprintf(stdout, "UI: %s\n", fleetUILink(tf.uiURL, ns, args[0]))
		return nil
	}
	return cmd
}

func queryFleet(ctx context.Context, c client.Client, id string) (*fleet.Status, error) {
	v, err := statusQuery(ctx, c, "fleet", id)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := v.Get(&raw); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", id, err)
	}
	var probe struct {
		FleetID string `json:"fleet_id"`
	}
	if json.Unmarshal(raw, &probe) != nil || probe.FleetID == "" {
		return nil, fmt.Errorf("%s is not a fleet rollout (use %s status %s)", id, programName, id)
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
		fmt.Fprintf(w, "; plan %s (%d constraints)", cmp.Or(st.PlanName, "-"), st.ConstraintCount)
	}
	if st.DryRun {
		fmt.Fprint(w, "; dry run")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tTARGET\tSTATE\tPHASE\tVALIDATED\tDEBT\tCHILD WORKFLOW\tNOTE")
	var gates []string
	for _, t := range st.Targets {
		phase, note := cmp.Or(t.Phase, "-"), t.Error
		if cs, ok := live[t.Name]; ok {
			phase = cs.Phase
			for _, g := range cs.OpenGates {
				note = strings.TrimSpace(note + " open gate " + g.ID)
				gates = append(gates, fmt.Sprintf("  %s: gate %s (%s) — %s decide %s %s <%s>", t.Name, g.ID, g.Title, programName, t.ChildID, g.ID, strings.Join(g.Choices, "|")))
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
		fmt.Fprintf(w, "\n  %s approve %s %s --reason ...\n", programName, st.FleetID, g.ID)
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
			fmt.Fprintf(w, "  %s  %s %s by %s (%s)\n", d.Time.Local().Format("2006-01-02 15:04:05"), cmp.Or(d.GateID, "fleet"), d.Action, d.Actor, cmp.Or(d.Reason, "no reason given"))
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

// fleetWatch prints new timeline lines until the fleet ends; result, when
// set, receives the final status as JSON. A fleet that did not complete is
// a finding (exit 1).
func fleetWatch(ctx context.Context, c client.Client, id string, stdout, result io.Writer, every time.Duration) error {
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
			if result != nil {
				if err := writeJSON(result, st); err != nil {
					return err
				}
			}
			switch st.State {
			case rollout.StateCompleted, rollout.StateCompletedWithDebt, rollout.StateDryRunDone:
				return nil
			}
			return findingsError{fmt.Sprintf("fleet ended %s", st.State)}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}
