package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/engine/sqlplan"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows"
)

// Demo approver identities used by --demo-auto-approve. They are separate
// people as far as the policy knows, so four-eyes still holds: the
// requester never approves their own rollout.
const (
	demoApprover  = "demo-approver"
	demoApprover2 = "demo-approver-2"
)

// workflowCommands are the Temporal-facing commands.
func workflowCommands() []command {
	return []command{
		{name: "start", summary: "start a rollout from a plan file (prints the workflow id and UI link)", run: cmdStart},
		{name: "status", summary: "show a rollout's status (phase, constraints, open gates)", run: cmdStatus},
		{name: "watch", summary: "follow a rollout until it ends, printing progress", run: cmdWatch},
		{name: "report", summary: "print a rollout's completion report (markdown); --out FILE also writes it", run: cmdReport},
		{name: "approve", summary: "approve a gate: approve <id> <gate> --reason ...", run: decideCmd(workflows.ChoiceApprove)},
		{name: "reject", summary: "reject a gate: reject <id> <gate> --reason ...", run: decideCmd(workflows.ChoiceReject)},
		{name: "decide", summary: "decide a gate with any offered choice: decide <id> <gate> <choice>", run: cmdDecide},
		{name: "remediate", summary: "decide a remediation gate: remediate <id> <gate> delete|set-null|accept-debt|re-audit|abort", run: cmdDecide},
		{name: "pause", summary: "pause a rollout before its next step", run: controlCmd(workflows.UpdatePause)},
		{name: "resume", summary: "resume a paused rollout", run: controlCmd(workflows.UpdateResume)},
		{name: "abort", summary: "abort a rollout (--rollback drops what it created)", run: controlCmd(workflows.UpdateAbort)},
		// "revert", not "rollback": the engine command rollback works on a
		// database directly; revert asks a running rollout to roll itself back.
		{name: "keygen", summary: "make an approver key pair: the private key signs your decisions, the public key goes into the worker's policy", run: cmdKeygen},
		{name: "revert", summary: "roll a running rollout back now (critical user complaints); --reason required", run: controlCmd(workflows.UpdateRollback)},
	}
}

// temporalFlags are shared by every workflow command.
type temporalFlags struct {
	uiURL string
}

func (t *temporalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.uiURL, "ui", envOr("FKROLLOUT_UI_URL", "http://localhost:8233"), "Temporal UI base URL for links")
}

// dial connects with the standard TEMPORAL_* variables.
func dial(ctx context.Context) (client.Client, string, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, "", fmt.Errorf("temporal client configuration (TEMPORAL_*): %w", err)
	}
	opts.Logger = quietLogger{}
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		return nil, "", fmt.Errorf("connect to temporal at %s: %w", orDefault(opts.HostPort, client.DefaultHostPort), err)
	}
	ns := opts.Namespace
	if ns == "" {
		ns = client.DefaultNamespace
	}
	return c, ns, nil
}

func uiLink(base, ns, id string) string {
	return strings.TrimRight(base, "/") + "/namespaces/" + ns + "/workflows/" + id
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func defaultActor() string {
	if v := os.Getenv("FKROLLOUT_ACTOR"); v != "" {
		return v
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return ""
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usageError{msg: "help requested"}
		}
		return usageError{msg: err.Error()}
	}
	return nil
}

// interleave lets flags follow positional arguments (approve ID GATE --reason x).
func interleave(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// startOptions are the flags of start.
type startOptions struct {
	planFile, inputFile, id, requester, envs, window, approvers, monitor, taskQueue string
	monitorInterval, monitorBaseline, perf, perfWorkload                            string
	windowNow, dryRun, wait                                                         bool
	follow                                                                          followOptions
	minProd                                                                         int
	gateTimeout                                                                     string
}

func cmdStart(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o startOptions
	var tf temporalFlags
	fs := newFlags("start", stderr)
	fs.StringVar(&o.planFile, "plan", "", "plan file: migration SQL or plan YAML (required unless --input has one)")
	fs.StringVar(&o.inputFile, "input", "", "full workflow input JSON (as pasted into the Temporal UI); flags override it")
	fs.StringVar(&o.id, "id", "", "rollout (workflow) id (default fkrollout-<time>)")
	fs.StringVar(&o.requester, "requester", defaultActor(), "who requests the rollout (four-eyes: cannot approve it)")
	fs.StringVar(&o.envs, "environments", "staging,production", "environments in order (names the worker is configured with)")
	fs.StringVar(&o.window, "window", "", "maintenance window of the last environment: HH:MM/DURATION[/TZ], e.g. 02:00/2h/Asia/Jakarta")
	fs.BoolVar(&o.windowNow, "window-now", false, "a 2h maintenance window that opens now (demos)")
	fs.StringVar(&o.approvers, "approvers", "", "comma-separated approver identities (default: anyone but the requester)")
	fs.IntVar(&o.minProd, "min-approvals-last", 1, "distinct approvers needed to promote to the last environment")
	fs.StringVar(&o.gateTimeout, "gate-timeout", "", "gate timeout, e.g. 24h (default: wait)")
	fs.StringVar(&o.monitor, "monitor", "", "watch duration after the last environment, e.g. 24h (default: off)")
	fs.StringVar(&o.monitorInterval, "monitor-interval", "", "time between monitor checks (default 5m)")
	fs.StringVar(&o.monitorBaseline, "monitor-baseline", "", "how long the production baseline is measured before the deploy (default 5m)")
	fs.StringVar(&o.perf, "perf", "", "run the staging perf phase, each measured run lasting this long, e.g. 30s (default: off)")
	fs.StringVar(&o.perfWorkload, "perf-workload", "demo", "perf workload name from the worker configuration (perf.workloads); demo is built in")
	fs.StringVar(&o.taskQueue, "task-queue", envOr("FKROLLOUT_TASK_QUEUE", workflows.DefaultTaskQueue), "worker task queue")
	fs.BoolVar(&o.dryRun, "dry-run", false, "checks, statistics and audit only; nothing changes")
	fs.BoolVar(&o.wait, "wait", false, "follow the rollout until it ends (like watch)")
	o.follow.register(fs)
	tf.register(fs)
	key := keyFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	in, err := buildInput(o, time.Now())
	if err != nil {
		return usageError{msg: err.Error()}
	}
	s, err := loadSigner(*key, in.Requester)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	c, ns, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	id := o.id
	if id == "" {
		id = "fkrollout-" + time.Now().UTC().Format("20060102-150405")
	}
	// The requester signs the start: four-eyes then knows who asked.
	in.RequesterProof = s.sign(workflows.StartClaim(id, in))
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       id,
		TaskQueue:                o.taskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		// Without this the SDK hands back the existing run of the same id.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            workflows.StaticSummary(planName(in), in),
	}, workflows.WorkflowName, in)
	if err != nil {
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			return fmt.Errorf("a rollout with id %q already exists; pick another --id", id)
		}
		return fmt.Errorf("start rollout: %w", err)
	}
	fmt.Fprintf(stdout, "rollout started: %s\n", run.GetID())
	fmt.Fprintf(stdout, "Temporal UI:     %s\n", uiLink(tf.uiURL, ns, run.GetID()))
	if !o.wait && !o.follow.demo && !o.follow.interactive {
		fmt.Fprintf(stdout, "follow it with:  starter watch %s\n", run.GetID())
		return nil
	}
	f, err := o.follow.follower(c, run.GetID(), stdout, uiLink(tf.uiURL, ns, run.GetID()))
	if err != nil {
		return err
	}
	return f.run(ctx)
}

// planName is the plan's name for the static summary; a plan that does
// not parse here is left to the workflow to refuse, with its reasons.
func planName(in workflows.Input) string {
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
func buildInput(o startOptions, now time.Time) (workflows.Input, error) {
	var in workflows.Input
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
	}
	if o.planFile != "" {
		text, format, err := readPlanFile(o.planFile)
		if err != nil {
			return in, err
		}
		in.Plan, in.PlanFormat = text, format
	}
	if strings.TrimSpace(in.Plan) == "" {
		return in, errors.New("--plan is required (a migration .sql or a plan .yaml)")
	}
	if o.requester != "" {
		in.Requester = o.requester
	}
	if in.Requester == "" {
		return in, errors.New("--requester is required (set FKROLLOUT_ACTOR or pass --requester)")
	}
	if len(in.Environments) == 0 || o.inputFile == "" {
		in.Environments = nil
		for _, e := range strings.Split(o.envs, ",") {
			if e = strings.TrimSpace(e); e != "" {
				in.Environments = append(in.Environments, workflows.EnvironmentInput{Name: e})
			}
		}
	}
	if len(in.Environments) == 0 {
		return in, errors.New("--environments: name at least one environment")
	}
	last := &in.Environments[len(in.Environments)-1]
	switch {
	case o.windowNow:
		start := now.UTC().Add(-time.Minute)
		last.MaintenanceWindow = &workflows.MaintenanceWindow{Start: start.Format("15:04"), Duration: "2h", Timezone: "UTC", NotifyBefore: "0s"}
	case o.window != "":
		parts := strings.SplitN(o.window, "/", 3)
		if len(parts) < 2 {
			return in, fmt.Errorf("--window %q: want HH:MM/DURATION[/TZ]", o.window)
		}
		w := &workflows.MaintenanceWindow{Start: parts[0], Duration: parts[1], Timezone: "UTC"}
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
		in.Approval.Default = workflows.GateRule{Approvers: approvers, Timeout: o.gateTimeout}
		if o.minProd > 1 && len(in.Environments) > 1 {
			if in.Approval.Gates == nil {
				in.Approval.Gates = map[string]workflows.GateRule{}
			}
			in.Approval.Gates["promotion/"+last.Name] = workflows.GateRule{Approvers: approvers, MinApprovals: o.minProd, Timeout: o.gateTimeout}
		}
	}
	if o.monitor != "" {
		in.Monitor = workflows.MonitorInput{Enabled: true, Duration: o.monitor, Interval: o.monitorInterval, BaselinePeriod: o.monitorBaseline}
	} else if o.monitorInterval != "" || o.monitorBaseline != "" {
		return in, errors.New("--monitor-interval and --monitor-baseline need --monitor")
	}
	if o.perf != "" {
		d, err := time.ParseDuration(o.perf)
		if err != nil || d <= 0 {
			return in, fmt.Errorf("--perf %q: want a positive duration such as 30s", o.perf)
		}
		warmup := "5s" // short demo runs get a shorter warm-up
		if d < 20*time.Second {
			warmup = "2s"
		}
		in.Perf = &workflows.PerfInput{Enabled: true, Workload: o.perfWorkload, Duration: o.perf, Warmup: warmup}
	}
	if o.dryRun {
		in.DryRun = true
	}
	return in, nil
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var tf temporalFlags
	var asJSON bool
	fs := newFlags("status", stderr)
	fs.BoolVar(&asJSON, "json", false, "print the full status as JSON")
	tf.register(fs)
	pos, err := interleave(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "usage: status <rollout-id> [--json]"}
	}
	c, ns, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := queryStatus(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, st)
	}
	fmt.Fprint(stdout, st.Summary())
	fmt.Fprintf(stdout, "  UI: %s\n", uiLink(tf.uiURL, ns, pos[0]))
	return nil
}

func queryStatus(ctx context.Context, c client.Client, id string) (*workflows.Status, error) {
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryStatus)
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("no rollout with id %q", id)
		}
		return nil, fmt.Errorf("query status of %s: %w", id, err)
	}
	var st workflows.Status
	if err := v.Get(&st); err != nil {
		return nil, fmt.Errorf("decode status of %s: %w", id, err)
	}
	return &st, nil
}

func cmdWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var fo followOptions
	var tf temporalFlags
	var every time.Duration
	fs := newFlags("watch", stderr)
	fo.register(fs)
	tf.register(fs)
	fs.DurationVar(&every, "every", time.Second, "poll interval")
	pos, err := interleave(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{msg: "usage: watch <rollout-id> [--demo-auto-approve|--interactive] [--progress auto|live|lines]"}
	}
	c, ns, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := fo.follower(c, pos[0], stdout, uiLink(tf.uiURL, ns, pos[0]))
	if err != nil {
		return err
	}
	f.every = every
	return f.run(ctx)
}

// followOptions are the flags of start --wait and watch.
type followOptions struct {
	demo, interactive bool
	progress          string
}

func (o *followOptions) register(fs *flag.FlagSet) {
	fs.BoolVar(&o.demo, "demo-auto-approve", false, "DEMO ONLY: follow the rollout and decide every gate as "+demoApprover+" (and "+demoApprover2+"); remediation deletes orphans")
	fs.BoolVar(&o.interactive, "interactive", false, "DEMO: follow the rollout and ask at the terminal how to decide each gate (sent as "+demoApprover+"/"+demoApprover2+")")
	fs.StringVar(&o.progress, "progress", "auto", "progress display: live (redrawn in place), lines (timeline lines), auto (live on a terminal)")
}

func (o *followOptions) follower(c client.Client, id string, stdout io.Writer, ui string) (*follower, error) {
	if o.demo && o.interactive {
		return nil, usageError{msg: "--demo-auto-approve and --interactive exclude each other"}
	}
	live, err := progressMode(o.progress, stdout)
	if err != nil {
		return nil, err
	}
	f := &follower{c: c, id: id, out: stdout, live: live, every: time.Second, ui: ui}
	switch {
	case o.demo:
		f.gates = gatesDemo
	case o.interactive:
		f.gates = gatesAsk
		f.in = bufio.NewReader(os.Stdin)
	}
	return f, nil
}

func demoChoice(g workflows.Gate) string {
	switch g.Kind {
	case notify.GateRemediation:
		return workflows.ChoiceDelete
	case notify.GatePromotion:
		// A perf warning refuses a plain approve; the demo overrides it
		// (the reason "demo auto-approve" is recorded).
		if slices.Contains(g.Choices, workflows.ChoiceApproveOverride) {
			return workflows.ChoiceApproveOverride
		}
		return workflows.ChoiceApprove
	}
	for _, c := range []string{workflows.ChoiceRetry, workflows.ChoiceContinue, workflows.ChoiceApprove} {
		if slices.Contains(g.Choices, c) {
			return c
		}
	}
	return g.Choices[0]
}

// decide sends the gate Update and waits for its result; a validator
// rejection comes back as an error carrying the workflow's reason.
func decide(ctx context.Context, c client.Client, id string, in workflows.DecisionInput, s *signer) (workflows.GateView, error) {
	var view workflows.GateView
	if err := s.signDecision(ctx, c, id, &in); err != nil {
		return view, err
	}
	h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		UpdateName:   workflows.UpdateDecide,
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
func recordRefusal(ctx context.Context, c client.Client, id string, in workflows.DecisionInput, err error, s *signer) {
	appErr, ok := errors.AsType[*temporal.ApplicationError](err)
	if !ok {
		return
	}
	rec := workflows.Refusal{Signal: "cli:" + in.Choice, Actor: in.Actor, GateID: in.GateID, Reason: appErr.Message()}
	// Under the worker's policy only a signed record is kept.
	s.signRefusal(ctx, c, id, &rec)
	_ = c.SignalWorkflow(ctx, id, "", workflows.SignalRecordRefusal, rec)
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

func decideCmd(choice string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return decideWith(ctx, append([]string{}, args...), choice, stdout, stderr)
	}
}

func cmdDecide(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return decideWith(ctx, args, "", stdout, stderr)
}

func decideWith(ctx context.Context, args []string, choice string, stdout, stderr io.Writer) error {
	var actor, reason, constraints string
	fs := newFlags("decide", stderr)
	fs.StringVar(&actor, "actor", defaultActor(), "who decides (FKROLLOUT_ACTOR)")
	fs.StringVar(&reason, "reason", "", "why (recorded with the decision)")
	fs.StringVar(&constraints, "constraints", "", "remediation: only these constraints (comma-separated)")
	key := keyFlag(fs)
	pos, err := interleave(fs, args)
	if err != nil {
		return err
	}
	want := 2
	if choice == "" {
		want = 3
	}
	if len(pos) != want {
		if choice == "" {
			return usageError{msg: "usage: decide <rollout-id> <gate-id> <choice> [--actor A] [--reason R] [--constraints a,b]"}
		}
		return usageError{msg: fmt.Sprintf("usage: %s <rollout-id> <gate-id> [--actor A] [--reason R]", choice)}
	}
	if choice == "" {
		choice = pos[2]
	}
	in := workflows.DecisionInput{GateID: pos[1], Choice: choice, Actor: actor, Reason: reason, Via: "cli"}
	if constraints != "" {
		in.Constraints = strings.Split(constraints, ",")
	}
	s, err := loadSigner(*key, actor)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	c, _, err := dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	view, err := decide(ctx, c, pos[0], in, s)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, view.Message)
	return nil
}

func controlCmd(kind string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		var actor, reason string
		var rollback bool
		fs := newFlags(kind, stderr)
		fs.StringVar(&actor, "actor", defaultActor(), "who asks (FKROLLOUT_ACTOR)")
		fs.StringVar(&reason, "reason", "", "why (required for rollback)")
		if kind == workflows.UpdateAbort {
			fs.BoolVar(&rollback, "rollback", false, "drop every constraint this rollout created before stopping")
		}
		key := keyFlag(fs)
		pos, err := interleave(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError{msg: fmt.Sprintf("usage: %s <rollout-id> [--actor A] [--reason R]", kind)}
		}
		s, err := loadSigner(*key, actor)
		if err != nil {
			return usageError{msg: err.Error()}
		}
		c, _, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		in := workflows.ControlInput{Actor: actor, Reason: reason, Rollback: rollback, Via: "cli"}
		if err := s.signControl(ctx, c, pos[0], kind, &in); err != nil {
			return err
		}
		h, err := c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID:   pos[0],
			UpdateName:   kind,
			Args:         []any{in},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		var ack workflows.Ack
		if err == nil {
			err = h.Get(ctx, &ack)
		}
		if err := updateError(pos[0], err); err != nil {
			return err
		}
		fmt.Fprintln(stdout, ack.Message)
		return nil
	}
}

// quietLogger keeps the SDK's info chatter out of CLI output.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(msg string, kv ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"temporal:", msg}, kv...)...)
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
