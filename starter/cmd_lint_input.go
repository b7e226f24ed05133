package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/inputschema"
	"github.com/fkrollout/fkrollout/workflows/fleet"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// withInputLint teaches lint a second job: `lint --input FILE.json` checks
// a workflow input (what a release owner pastes into the Temporal UI)
// against the published schema, the workflow's own input checks and, with
// --config, the worker's approval policy, before anything starts. Without
// --input the command lints plans as before.
func withInputLint(cmd *cobra.Command, f *engineFlags) {
	var o inputLintOptions
	cmd.Use = "lint (--plan FILE | --input FILE.json)"
	cmd.Short = "review a plan (.sql migration or .yaml) against the lint rules, or a workflow input against its schema"
	cmd.Example += "\n  fkrollout lint --input rollout.json --config worker.yaml\n  fkrollout lint --input fleet.json --fleet"
	cmd.Flags().StringVar(&o.path, "input", "", "workflow input JSON to validate against docs/input.schema.json (instead of --plan)")
	cmd.Flags().BoolVar(&o.fleet, "fleet", false, "with --input: the input is a fleet's (FKFleetRollout, docs/fleet-input.schema.json)")
	cmd.Flags().StringVar(&o.config, "config", "", "with --input: worker configuration whose approval policy the input must pass (as "+config.EnvVar+" names it for the worker)")
	lintPlan := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if o.path == "" {
			if o.fleet || o.config != "" {
				return usageError{"--fleet and --config need --input"}
			}
			return lintPlan(cmd, args)
		}
		if f.planPath != "" || cmd.Flags().Changed("rules") || f.strict {
			return usageError{"--input checks a workflow input; --plan, --strict and --rules check a plan: give one or the other"}
		}
		o.json = f.json
		return lintInput(cmd.OutOrStdout(), o, time.Now())
	}
}

type inputLintOptions struct {
	path, config string
	fleet, json  bool
}

// inputProblem is one reason the input would be refused: by the schema (a
// misspelled or missing key, a wrong type), by the workflow's own input
// checks, or by the worker's policy.
type inputProblem struct {
	Source  string `json:"source"` // "schema", "input" or "policy"
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (p inputProblem) String() string {
	if p.Source == "schema" {
		return inputschema.Problem{Path: p.Path, Message: p.Message}.String()
	}
	return p.Source + ": " + p.Message
}

type inputLintReport struct {
	Input    string         `json:"input"`
	Workflow string         `json:"workflow"`
	Valid    bool           `json:"valid"`
	Policy   bool           `json:"policy_checked"`
	Problems []inputProblem `json:"problems"`
	Notes    []string       `json:"notes,omitempty"`
}

func lintInput(stdout io.Writer, o inputLintOptions, now time.Time) error {
	raw, err := os.ReadFile(o.path)
	if err != nil {
		return fmt.Errorf("read input: %w", err)
	}
	rep := inputLintReport{Input: o.path, Workflow: rollout.WorkflowName, Problems: []inputProblem{}}
	schema, err := inputschema.RolloutSchema()
	if o.fleet {
		rep.Workflow = fleet.WorkflowName
		schema, err = inputschema.FleetSchema()
	}
	if err != nil {
		return err
	}
	for _, p := range inputschema.Validate(schema, raw) {
		rep.Problems = append(rep.Problems, inputProblem{Source: "schema", Path: p.Path, Message: p.Message})
	}
	// The workflow's checks and the policy run on an input that has the
	// schema's shape: on anything else they would repeat the schema's
	// complaints in other words.
	if len(rep.Problems) == 0 {
		problems, notes, err := checkDecoded(raw, o, now)
		if err != nil {
			return err
		}
		rep.Problems, rep.Notes = append(rep.Problems, problems...), notes
		rep.Policy = o.config != ""
	}
	rep.Valid = len(rep.Problems) == 0
	if o.json {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Fprintln(stdout, p.String())
		}
		for _, n := range rep.Notes {
			fmt.Fprintln(stdout, "note: "+n)
		}
		if rep.Valid {
			what := "fits the schema and the workflow's input checks"
			if rep.Policy {
				what += "; the worker policy accepts it"
			}
			fmt.Fprintf(stdout, "%s: valid %s input: %s\n", o.path, rep.Workflow, what)
		} else {
			fmt.Fprintf(stdout, "%s: %d problem(s)\n", o.path, len(rep.Problems))
		}
	}
	if !rep.Valid {
		return findingsError{fmt.Sprintf("%s: the %s input has %d problem(s)", o.path, rep.Workflow, len(rep.Problems))}
	}
	return nil
}

// checkDecoded runs the workflow's own input checks and, with a worker
// configuration, its policy check, exactly as the workflow will at start.
func checkDecoded(raw []byte, o inputLintOptions, now time.Time) (problems []inputProblem, notes []string, err error) {
	var in rollout.Input
	req := rollout.PolicyRequest{WorkflowID: "lint"}
	if o.fleet {
		var fin fleet.Input
		if err := json.Unmarshal(raw, &fin); err != nil {
			return nil, nil, fmt.Errorf("decode fleet input: %w", err)
		}
		if err := fin.Validate(); err != nil {
			problems = append(problems, split("input", err, "invalid fleet input: ")...)
		}
		// As the fleet checks itself at start: its children run the
		// safeguards unless its skip (allowed by the policy) turns them off.
		req = fin.PolicyRequest("lint", !fin.DryRun)
		in = req.Input
	} else {
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, nil, fmt.Errorf("decode rollout input: %w", err)
		}
		if err := rollout.ValidateInput(in); err != nil {
			problems = append(problems, split("input", err, "invalid rollout input: ")...)
		}
		problems = append(problems, enabledFalse(raw)...)
	}
	if o.config == "" {
		return problems, nil, nil
	}
	cfg, err := config.LoadFrom(o.config, os.LookupEnv)
	if err != nil {
		return nil, nil, fmt.Errorf("worker configuration: %w", err)
	}
	if in.RequesterProof != nil {
		// The proof signs the workflow id, which is chosen at start.
		in.RequesterProof = nil
		notes = append(notes, "requester_proof is not verified here (it signs the workflow id, chosen at start); the policy was checked as for an unsigned start, which may ask for more approvers than the signed one will")
	}
	req.Input = in
	if !o.fleet {
		// As the workflow runs it: the safeguards on unless skipped.
		req.Input, req.Safeguards = rollout.WithSafeDefaults(in), !in.DryRun
	}
	eff, err := rollout.ResolvePolicy(cfg.Policy, req, "", now)
	if err != nil {
		problems = append(problems, split("policy", err, "the worker policy refuses this rollout: ")...)
	} else {
		notes = append(notes, eff.Notes...)
	}
	return problems, notes, nil
}

// continuation recognises the second half of one reason that itself holds
// a "; " ("...on_timeout: approve-override needs a person and a reason; a
// timeout cannot choose it"): reasons start with what they are about, a
// field, an environment or a gate, never with these words.
var continuation = regexp.MustCompile(`^(a|an|the|this|name|it|see) `)

// split turns a workflow's "; "-joined error into one problem per reason.
func split(source string, err error, prefix string) []inputProblem {
	var out []inputProblem
	for _, part := range strings.Split(strings.TrimPrefix(err.Error(), prefix), "; ") {
		if len(out) > 0 && continuation.MatchString(part) {
			out[len(out)-1].Message += "; " + part
			continue
		}
		out = append(out, inputProblem{Source: source, Message: part})
	}
	return out
}

// enabledFalse names "enabled": false in the perf and monitor sections that
// skip does not list: it once turned them off; now only skip does, so the
// input would run them.
func enabledFalse(raw []byte) []inputProblem {
	var doc struct {
		Perf    *struct{ Enabled *bool } `json:"perf"`
		Monitor *struct{ Enabled *bool } `json:"monitor"`
		Skip    []string                 `json:"skip"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return nil
	}
	var out []inputProblem
	for _, x := range []struct {
		name    string
		enabled *bool
	}{{"perf", enabledOf(doc.Perf)}, {"monitor", enabledOf(doc.Monitor)}} {
		if x.enabled != nil && !*x.enabled && !slices.Contains(doc.Skip, x.name) {
			out = append(out, inputProblem{Source: "input", Path: x.name + ".enabled",
				Message: fmt.Sprintf(`%s.enabled false does not turn it off: it runs unless skip lists %q (where the worker's policy.allow_skip allows it)`, x.name, x.name)})
		}
	}
	return out
}

func enabledOf(s *struct{ Enabled *bool }) *bool {
	if s == nil {
		return nil
	}
	return s.Enabled
}
