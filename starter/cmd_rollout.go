package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/policy"
)

// Demo approver identities used by --demo-auto-approve. They are separate
// people as far as the policy knows, so four-eyes still holds: the
// requester never approves their own rollout.
const (
	demoApprover  = "demo-approver"
	demoApprover2 = "demo-approver-2"
)

// rolloutCommands are the commands that start, follow and steer one
// rollout through Temporal.
func rolloutCommands() []*cobra.Command {
	return []*cobra.Command{
		startCmd(), statusCmd(), watchCmd(), reportCmd(),
		decideCmd("approve ROLLOUT_ID GATE_ID", approval.ChoiceApprove, "approve a gate",
			"  fkrollout approve fkrollout-20260501-020000 production/promotion/2 --reason \"staging clean\""),
		decideCmd("reject ROLLOUT_ID GATE_ID", approval.ChoiceReject, "reject a gate",
			"  fkrollout reject fkrollout-20260501-020000 production/promotion/2 --reason \"release freeze\""),
		decideCmd("decide ROLLOUT_ID GATE_ID CHOICE", "", "decide a gate with any choice it offers (status lists them)",
			"  fkrollout decide fkrollout-20260501-020000 production/promotion/2 approve-override --reason \"+12 ms is acceptable\""),
		decideCmd("remediate ROLLOUT_ID GATE_ID CHOICE", "", "decide a remediation gate: CHOICE is delete, set-null, accept-debt, re-audit or abort",
			"  fkrollout remediate fkrollout-20260501-020000 staging/remediation/1 delete --constraints fk_workflow_stages_workflow_instance"),
		controlCmd("pause", approval.UpdatePause, "pause a rollout before its next step"),
		controlCmd("resume", approval.UpdateResume, "resume a paused rollout"),
		controlCmd("abort", approval.UpdateAbort, "abort a rollout (--rollback drops what it created)"),
		// "revert", not "rollback": the engine command rollback works on a
		// database directly; revert asks a running rollout to roll itself back.
		controlCmd("revert", approval.UpdateRollback, "roll a running rollout back now (critical user complaints); --reason required"),
	}
}

// startOptions are the flags of start; fleet-start shares most of them.
type startOptions struct {
	planFile, inputFile, id, requester, envs, window, approvers, taskQueue string
	perfWorkload, config                                                   string
	skip                                                                   []string
	windowNow, dryRun, wait, json, rehearse                                bool
	follow                                                                 followOptions
	minProd                                                                int
	gateTimeout, monitor, monitorInterval, monitorBaseline, perf           time.Duration
}

func startCmd() *cobra.Command {
	var o startOptions
	var tf temporalFlags
	cmd := &cobra.Command{
		Use:   "start --plan FILE",
		Short: "start a rollout from a plan file (prints the workflow id and UI link)",
		Example: `  fkrollout start --plan sql/migration.sql --requester rita@example.com --key ~/.fkrollout/rita.key \
    --environments staging,production --window 02:00/2h/Asia/Jakarta --min-approvals-last 2
  fkrollout start --plan sql/migration.sql --window 02:00/2h --skip perf --config worker.yaml
  fkrollout start --plan sql/migration.sql --dry-run --wait`,
		Args: exactArgs(),
	}
	fs := cmd.Flags()
	fs.StringVar(&o.planFile, "plan", "", "plan file: migration SQL or plan YAML (required unless --input has one)")
	fs.StringVar(&o.inputFile, "input", "", "full workflow input JSON (as pasted into the Temporal UI); flags override it")
	fs.StringVar(&o.id, "id", "", "rollout (workflow) id (default fkrollout-<time>)")
	fs.StringVar(&o.requester, "requester", defaultActor(), "who requests the rollout (four-eyes: cannot approve it)")
	fs.StringVar(&o.envs, "environments", "staging,production", "environments in order (names the worker is configured with)")
	fs.StringVar(&o.window, "window", "", "maintenance window of the last environment: HH:MM/DURATION[/TZ], e.g. 02:00/2h/Asia/Jakarta (required unless --skip window)")
	fs.BoolVar(&o.windowNow, "window-now", false, "a 2h maintenance window that opens now (demos)")
	fs.StringVar(&o.approvers, "approvers", "", "comma-separated approver identities (default: anyone but the requester)")
	fs.IntVar(&o.minProd, "min-approvals-last", 1, "distinct approvers needed to promote to the last environment")
	fs.DurationVar(&o.gateTimeout, "gate-timeout", 0, "gate timeout, e.g. 24h (default: wait)")
	fs.DurationVar(&o.monitor, "monitor", 0, "watch duration after the last environment (default 24h; at least the worker's policy.min_watch; off only with --skip monitor)")
	fs.DurationVar(&o.monitorInterval, "monitor-interval", 0, "time between monitor checks (default 5m)")
	fs.DurationVar(&o.monitorBaseline, "monitor-baseline", 0, "how long the production baseline is measured before the deploy (default 5m)")
	fs.DurationVar(&o.perf, "perf", 0, "the staging perf phase measures this long per round of slices without/with the keys (default 30s; off only with --skip perf)")
	fs.StringVar(&o.perfWorkload, "perf-workload", "demo", "perf workload name from the worker configuration (perf.workloads); demo is built in")
	fs.StringVar(&o.taskQueue, "task-queue", envOr("FKROLLOUT_TASK_QUEUE", rollout.DefaultTaskQueue), "worker task queue (FKROLLOUT_TASK_QUEUE)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "checks, statistics and audit only; nothing changes")
	fs.BoolVar(&o.rehearse, "rehearse-rollback", false, "rehearse the rollback in the first environment (drop, re-add, validate) before the promotion")
	fs.StringSliceVar(&o.skip, "skip", nil, "safeguards to turn off, where the worker's policy.allow_skip lets you: "+strings.Join(policy.Safeguards, ","))
	fs.StringVar(&o.config, "config", "", "worker configuration whose policy the rollout must pass, checked before it starts (as lint --input --config does)")
	fs.BoolVar(&o.wait, "wait", false, "follow the rollout until it ends (like watch; exit 1 when it does not complete)")
	fs.BoolVar(&o.json, "json", false, "print the started rollout as JSON (with --wait: its final status; progress goes to stderr)")
	o.follow.register(fs)
	tf.register(fs)
	key := keyFlag(fs)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		for _, name := range []string{"gate-timeout", "monitor", "monitor-interval", "monitor-baseline", "perf"} {
			d, _ := fs.GetDuration(name)
			if err := positive(cmd, name, d); err != nil {
				return err
			}
		}
		return runStart(cmd.Context(), o, tf, *key, cmd.OutOrStdout(), cmd.ErrOrStderr())
	}
	return cmd
}

func runStart(ctx context.Context, o startOptions, tf temporalFlags, key string, stdout, stderr io.Writer) error {
	if err := o.follow.check(); err != nil {
		return err
	}
	in, err := buildInput(o, time.Now())
	if err != nil {
		return err
	}
	if err := checkSafeguards(in, o.config, stderr, time.Now()); err != nil {
		return err
	}
	s, err := loadSigner(key, in.Requester)
	if err != nil {
		return err
	}
	c, ns, err := tf.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	id := o.id
	if id == "" {
		id = "fkrollout-" + time.Now().UTC().Format("20060102-150405")
	}
	// The requester signs the start: four-eyes then knows who asked.
	in.RequesterProof = s.sign(rollout.StartClaim(id, in))
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                o.taskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without this the SDK hands back the existing run of the same id.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            rollout.StaticSummary(planName(in), in),
	}, rollout.WorkflowName, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return fmt.Errorf("a rollout with id %q already exists; pick another --id", id)
		}
		return fmt.Errorf("start rollout: %w", err)
	}
	link := tf.link(ns, run.GetID())
	follow := o.wait || o.follow.demo || o.follow.interactive
	// With --json stdout carries one document: the start, or with a
	// follower the final status (the follower's lines go to stderr).
	human := stdout
	if o.json {
		human = stderr
		if !follow {
			return writeJSON(stdout, map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "namespace": ns, "ui": link})
		}
	}
	fmt.Fprintf(human, "rollout started: %s\n", run.GetID())
	fmt.Fprintf(human, "Temporal UI:     %s\n", link)
	if !follow {
		fmt.Fprintf(human, "follow it with:  %s watch %s\n", programName, run.GetID())
		return nil
	}
	f, err := o.follow.follower(c, run.GetID(), human, link)
	if err != nil {
		return err
	}
	if o.json {
		f.result = stdout
	}
	return f.run(ctx)
}

// planName is the plan's name for the static summary; a plan that does
// not parse here is left to the workflow to refuse, with its reasons.
func planName(in rollout.Input) string {
	var src *plan.Source
	var err error
	if in.PlanFormat == "" {
		src, err = sqlplan.ParseAutoSource(in.Plan)
	} else {
		src, err = sqlplan.Parse(in.Plan, plan.Format(in.PlanFormat))
	}
	if err != nil {
		return ""
	}
	return src.Plan.Name
}

// buildInput turns flags (and an optional input file) into workflow input.
func buildInput(o startOptions, now time.Time) (rollout.Input, error) {
	var in rollout.Input
	if o.perf < 0 || o.gateTimeout < 0 || o.monitor < 0 || o.monitorInterval < 0 || o.monitorBaseline < 0 {
		return in, usageError{msg: "--perf, --gate-timeout, --monitor, --monitor-interval and --monitor-baseline must not be negative"}
	}
	if o.inputFile != "" {
		b, err := os.ReadFile(o.inputFile)
		if err != nil {
			return in, fmt.Errorf("--input: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			return in, fmt.Errorf("--input %s: %w", o.inputFile, err)
		}
		if unknown := in.UnknownKeys(); len(unknown) > 0 {
			return in, fmt.Errorf("--input %s: %s", o.inputFile, rollout.UnknownKeysProblem(unknown))
		}
	}
	if o.planFile != "" {
		text, format, err := readPlanFile(o.planFile)
		if err != nil {
			return in, err
		}
		in.Plan, in.PlanFormat = text, format
	}
	if strings.TrimSpace(in.Plan) == "" {
		return in, usageError{msg: "--plan is required (a migration .sql or a plan .yaml)"}
	}
	if o.requester != "" {
		in.Requester = o.requester
	}
	if in.Requester == "" {
		return in, usageError{msg: "--requester is required (set FKROLLOUT_ACTOR or pass --requester)"}
	}
	if len(in.Environments) == 0 || o.inputFile == "" {
		in.Environments = nil
		for _, e := range strings.Split(o.envs, ",") {
			if e = strings.TrimSpace(e); e != "" {
				in.Environments = append(in.Environments, rollout.EnvironmentInput{Name: e})
			}
		}
	}
	if len(in.Environments) == 0 {
		return in, usageError{msg: "--environments: name at least one environment"}
	}
	last := &in.Environments[len(in.Environments)-1]
	switch {
	case o.windowNow:
		start := now.UTC().Add(-time.Minute)
		last.MaintenanceWindow = &rollout.MaintenanceWindow{Start: start.Format("15:04"), Duration: "2h", Timezone: "UTC", NotifyBefore: "0s"}
	case o.window != "":
		parts := strings.SplitN(o.window, "/", 3)
		if len(parts) < 2 {
			return in, usageError{msg: fmt.Sprintf("--window %q: want HH:MM/DURATION[/TZ]", o.window)}
		}
		w := &rollout.MaintenanceWindow{Start: parts[0], Duration: parts[1], Timezone: "UTC"}
		if len(parts) == 3 {
			w.Timezone = parts[2]
		}
		last.MaintenanceWindow = w
	}
	var approvers []string
	for _, a := range strings.Split(o.approvers, ",") {
		if a = strings.TrimSpace(a); a != "" {
			approvers = append(approvers, a)
		}
	}
	if o.follow.demo || o.follow.interactive {
		approvers = append(approvers, demoApprover, demoApprover2)
	}
	if o.inputFile == "" || len(approvers) > 0 {
		in.Approval.Default = approval.GateRule{Approvers: approvers, Timeout: durationText(o.gateTimeout)}
		if o.minProd > 1 && len(in.Environments) > 1 {
			if in.Approval.Gates == nil {
				in.Approval.Gates = map[string]approval.GateRule{}
			}
			in.Approval.Gates["promotion/"+last.Name] = approval.GateRule{Approvers: approvers, MinApprovals: o.minProd, Timeout: durationText(o.gateTimeout)}
		}
	}
	// The watch runs unless skipped; the flags only configure it.
	if o.monitor > 0 || o.monitorInterval > 0 || o.monitorBaseline > 0 {
		in.Monitor = rollout.MonitorInput{Enabled: true, Duration: durationText(o.monitor), Interval: durationText(o.monitorInterval), BaselinePeriod: durationText(o.monitorBaseline)}
	}
	if o.perf > 0 {
		warmup := "5s" // short demo runs get a shorter warm-up
		if o.perf < 20*time.Second {
			warmup = "2s"
		}
		in.Perf = &rollout.PerfInput{Enabled: true, Workload: o.perfWorkload, Duration: durationText(o.perf), Warmup: warmup}
	}
	if o.dryRun {
		in.DryRun = true
	}
	if o.rehearse {
		in.RehearseRollback = true
	}
	for _, sk := range o.skip {
		if sk = strings.TrimSpace(sk); sk != "" && !in.Skips(sk) {
			in.Skip = append(in.Skip, sk)
		}
	}
	return in, nil
}

// statusQuery runs the status query of a rollout or a fleet (kind names
// it when there is no such workflow).
func statusQuery(ctx context.Context, c client.Client, kind, id string) (converter.EncodedValue, error) {
	v, err := c.QueryWorkflow(ctx, id, "", rollout.QueryStatus)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("no %s with id %q", kind, id)
		}
		return nil, fmt.Errorf("query status of %s: %w", id, err)
	}
	return v, nil
}

func queryStatus(ctx context.Context, c client.Client, id string) (*rollout.Status, error) {
	v, err := statusQuery(ctx, c, "rollout", id)
	if err != nil {
		return nil, err
	}
	var st rollout.Status
	if err := v.Get(&st); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return &st, nil
}

func statusCmd() *cobra.Command {
	var tf temporalFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status ROLLOUT_ID",
		Short: "show a rollout's status (phase, constraints, open gates and how to decide them)",
		Example: "  fkrollout status fkrollout-20260501-020000\n  fkrollout status fkrollout-20260501-020000 --json | jq .open_gates\n" +
			"  fkrollout status fkrollout-20260501-020000 --constraints --env production --state debt",
		Args: exactArgs("ROLLOUT_ID"),
	}
	var cf constraintsFlags
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (counts complete, lists bounded: see truncated; --constraints pages the rest)")
	cf.register(cmd.Flags())
	tf.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if err := cf.check(); err != nil {
			return err
		}
		c, ns, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if cf.on {
			return printConstraints(ctx, stdout, c, args[0], cf, asJSON)
		}
		st, err := queryStatus(ctx, c, args[0])
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, st)
		}
		fmt.Fprint(stdout, st.Summary())
		fmt.Fprintf(stdout, "  UI: %s\n", tf.link(ns, args[0]))
		return nil
	}
	return cmd
}

func watchCmd() *cobra.Command {
	var fo followOptions
	var tf temporalFlags
	var every time.Duration
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch ROLLOUT_ID",
		Short: "follow a rollout until it ends, printing progress (exit 1 when it does not complete)",
		Example: "  fkrollout watch fkrollout-20260501-020000\n" +
			"  fkrollout watch fkrollout-20260501-020000 --progress lines --every 5s",
		Args: exactArgs("ROLLOUT_ID"),
	}
	fo.register(cmd.Flags())
	tf.register(cmd.Flags())
	cmd.Flags().DurationVar(&every, "every", time.Second, "poll interval")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the final status as JSON (progress goes to stderr)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		if every <= 0 {
			return usageError{msg: fmt.Sprintf("--every must be positive, got %s", every)}
		}
		if err := fo.check(); err != nil {
			return err
		}
		c, ns, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		progress := stdout
		if asJSON {
			progress = cmd.ErrOrStderr()
		}
		f, err := fo.follower(c, args[0], progress, tf.link(ns, args[0]))
		if err != nil {
			return err
		}
		if asJSON {
			f.result = stdout
		}
		f.every = every
		return f.run(ctx)
	}
	return cmd
}

// followOptions are the flags of start --wait and watch.
type followOptions struct {
	demo, interactive bool
	progress          string
}

func (o *followOptions) register(fs *pflag.FlagSet) {
	fs.BoolVar(&o.demo, "demo-auto-approve", false, "DEMO ONLY: follow the rollout and decide every gate as "+demoApprover+" (and "+demoApprover2+"); remediation deletes orphans")
	fs.BoolVar(&o.interactive, "interactive", false, "DEMO: follow the rollout and ask at the terminal how to decide each gate (sent as "+demoApprover+"/"+demoApprover2+")")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: live (redrawn in place), lines (timeline lines), auto (live on a terminal)")
}

// check refuses contradictory or unknown values before anything starts.
func (o *followOptions) check() error {
	if o.demo && o.interactive {
		return usageError{msg: "--demo-auto-approve and --interactive exclude each other"}
	}
	_, err := progressMode(o.progress, io.Discard)
	return err
}

func (o *followOptions) follower(c client.Client, id string, out io.Writer, ui string) (*follower, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	live, err := progressMode(o.progress, out)
	if err != nil {
		return nil, err
	}
	f := &follower{c: c, id: id, out: out, live: live, every: time.Second, ui: ui}
	switch {
	case o.demo:
		f.gates = gatesDemo
	case o.interactive:
		f.gates = gatesAsk
		f.in = bufio.NewReader(os.Stdin)
	}
	return f, nil
}

func demoChoice(g approval.Gate) string {
	switch g.Kind {
	case notify.GateRemediation:
		return approval.ChoiceDelete
	case notify.GatePromotion:
		// A perf warning refuses a plain approve; the demo overrides it
		// (the reason "demo auto-approve" is recorded).
		if slices.Contains(g.Choices, approval.ChoiceApproveOverride) {
			return approval.ChoiceApproveOverride
		}
		return approval.ChoiceApprove
	}
	for _, c := range []string{approval.ChoiceRetry, approval.ChoiceContinue, approval.ChoiceApprove} {
		if slices.Contains(g.Choices, c) {
			return c
		}
	}
	return g.Choices[0]
}

// decide sends the gate Update and waits for its result; a validator
// rejection comes back as an error carrying the workflow's reason.
func decide(ctx context.Context, c client.Client, id string, in approval.DecisionInput, s *signer) (approval.GateView, error) {
	var view approval.GateView
	if err := s.signDecision(ctx, c, id, &in); err != nil {
		return view, err
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   approval.UpdateDecide,
		UpdateID:     "cli/" + in.GateID + "/" + in.Actor + "/" + in.Choice,
		Args:         []any{in},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = h.Get(ctx, &view)
	}
	recordRefusal(ctx, c, id, in, err, s)
	return view, updateError(id, err)
}

// recordRefusal signals a decision the workflow's validator refused back to
// the workflow, as the Slack path does: a rejected Update leaves no trace
// in history, and the SRE reading status.refusals should see who tried
// what. The signal only records; a failure to send it is not the user's
// error (the refusal itself is what they are told).
func recordRefusal(ctx context.Context, c client.Client, id string, in approval.DecisionInput, err error, s *signer) {
	appErr, ok := errors.AsType[*temporal.ApplicationError](err)
	if !ok {
		return
	}
	rec := approval.Refusal{Signal: "cli:" + in.Choice, Actor: in.Actor, GateID: in.GateID, Reason: appErr.Message()}
	// Under the worker's policy only a signed record is kept.
	s.signRefusal(ctx, c, id, &rec)
	_ = c.SignalWorkflow(ctx, id, "", approval.SignalRecordRefusal, rec)
}

func updateError(id string, err error) error {
	if err == nil {
		return nil
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("no running rollout with id %q", id)
	}
	return fmt.Errorf("rejected: %w", err)
}

// decideCmd is approve and reject (choice fixed) and decide and remediate
// (the choice is the third argument).
func decideCmd(use, choice, short, example string) *cobra.Command {
	var actor, reason, constraints string
	var asJSON bool
	var tf temporalFlags
	names := strings.Fields(use)[1:]
	cmd := &cobra.Command{Use: use, Short: short, Example: example, Args: exactArgs(names...)}
	fs := cmd.Flags()
	fs.StringVar(&actor, "actor", defaultActor(), "who decides (FKROLLOUT_ACTOR)")
	fs.StringVar(&reason, "reason", "", "why (recorded with the decision)")
	fs.StringVar(&constraints, "constraints", "", "remediation: only these constraints (comma-separated)")
	fs.BoolVar(&asJSON, "json", false, "print the gate after the decision as JSON")
	tf.register(fs)
	key := keyFlag(fs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout := cmd.Context(), cmd.OutOrStdout()
		ch := choice
		if ch == "" {
			ch = args[2]
		}
		in := approval.DecisionInput{GateID: args[1], Choice: ch, Actor: actor, Reason: reason, Via: "cli"}
		if constraints != "" {
			in.Constraints = splitList(constraints)
		}
		s, err := loadSigner(*key, actor)
		if err != nil {
			return err
		}
		c, _, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		view, err := decide(ctx, c, args[0], in, s)
		if err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, view)
		}
		fmt.Fprintln(stdout, view.Message)
		return nil
	}
	return cmd
}

// controlCmd is pause, resume, abort and revert: the command name sends
// the Update named kind.
func controlCmd(name, kind, short string) *cobra.Command {
	var actor, reason string
	var rollback, asJSON bool
	var tf temporalFlags
	cmd := &cobra.Command{
		Use:     name + " ROLLOUT_ID",
		Short:   short,
		Example: fmt.Sprintf("  fkrollout %s fkrollout-20260501-020000 --reason \"…\"", name),
		Args:    exactArgs("ROLLOUT_ID"),
	}
	fs := cmd.Flags()
	fs.StringVar(&actor, "actor", defaultActor(), "who asks (FKROLLOUT_ACTOR)")
	fs.StringVar(&reason, "reason", "", "why (required for revert)")
	if kind == approval.UpdateAbort {
		fs.BoolVar(&rollback, "rollback", false, "drop every constraint this rollout created before stopping")
	}
	fs.BoolVar(&asJSON, "json", false, "print the workflow's answer as JSON")
	tf.register(fs)
	key := keyFlag(fs)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx, stdout, id := cmd.Context(), cmd.OutOrStdout(), args[0]
		s, err := loadSigner(*key, actor)
		if err != nil {
			return err
		}
		c, _, err := tf.dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		in := approval.ControlInput{Actor: actor, Reason: reason, Rollback: rollback, Via: "cli"}
		if err := s.signControl(ctx, c, id, kind, &in); err != nil {
			return err
		}
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   kind,
			Args:         []any{in},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		var ack approval.Ack
		if err == nil {
			err = h.Get(ctx, &ack)
		}
		if err := updateError(id, err); err != nil {
			return err
		}
		if asJSON {
			return writeJSON(stdout, ack)
		}
		fmt.Fprintln(stdout, ack.Message)
		return nil
	}
	return cmd
}

// readPlanFile reads --plan for a workflow start: its text and its format by
// extension. It parses the file first, so an empty, comment-only or broken
// plan is refused here, naming the file, instead of after the start.
func readPlanFile(path string) (text, format string, err error) {
	src, err := sqlplan.LoadSource(path)
	if err != nil {
		return "", "", fmt.Errorf("--plan: %w", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("--plan: %w", err)
	}
	return string(b), string(src.Format), nil
}
