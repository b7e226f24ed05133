package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const exampleInput = "../workflows/testdata/example-input.json"

// TestLintInput runs `lint --input` through the real command tree: the
// schema, the workflow's own input checks and the worker's policy.
func TestLintInput(t *testing.T) {
	dir := t.TempDir()
	example, err := os.ReadFile(exampleInput)
	require.NoError(t, err)
	edited := func(name string, f func(m map[string]any)) string {
		var m map[string]any
		require.NoError(t, json.Unmarshal(example, &m))
		f(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return writeInputFile(t, dir, name, string(b))
	}
	misspelled := edited("misspelled.json", func(m map[string]any) {
		delete(m, "dry_run")
		m["dryrun"] = true
		m["aproval"] = map[string]any{}
	})
	badZone := edited("zone.json", func(m map[string]any) {
		m["environments"].([]any)[1].(map[string]any)["maintenance_window"].(map[string]any)["timezone"] = "Mars/Olympus_Mons"
	})
	inlineWorkload := edited("inline.json", func(m map[string]any) {
		p := m["perf"].(map[string]any)
		delete(p, "workload")
		p["workload_yaml"] = "operations: []"
	})
	skipsPerf := edited("skip-perf.json", func(m map[string]any) {
		m["skip"] = []string{"perf"}
		m["perf"].(map[string]any)["enabled"] = false
	})
	noWindow := edited("no-window.json", func(m map[string]any) {
		delete(m["environments"].([]any)[1].(map[string]any), "maintenance_window")
	})
	allowPerf := writeInputFile(t, dir, "allow.yaml", "policy:\n  trust_client_identity: true\n  allow_skip: [perf]\n")
	// Only staging has a policy: production's gates could not be approved.
	strict := writeInputFile(t, dir, "strict.yaml", `
policy:
  environments:
    staging:
      approvers: ["role:dba"]
`)
	devMode := writeInputFile(t, dir, "dev.yaml", "policy:\n  trust_client_identity: true\n")
	fleetInput := writeInputFile(t, dir, "fleet.json", `{"plan":"ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES c(id) NOT VALID;",
 "requester":"rita@example.com","targets":["tenant_a","tenant_b"],"batch_size":5}`)
	fleetSkips := writeInputFile(t, dir, "fleet-skips.json", `{"plan":"ALTER TABLE a ADD CONSTRAINT fk FOREIGN KEY (b) REFERENCES c(id) NOT VALID;",
 "requester":"rita@example.com","targets":["tenant_a","tenant_b"],"skip":["perf","full_backup"],
 "maintenance_window":{"start":"02:00","duration":"2h","timezone":"UTC"}}`)
	fleetTwice := writeInputFile(t, dir, "fleet-twice.json", `{"plan":"x","requester":"rita@example.com","targets":["tenant_a","tenant_a"],"batchsize":5}`)

	cases := []struct {
		name      string
		args      []string
		code      int
		stdout    []string
		stderr    string
		notStdout string
	}{
		{"valid example", []string{"lint", "--input", exampleInput}, 0,
			[]string{"valid FKRollout input: fits the schema and the workflow's input checks"}, "", "problem"},
		{"misspelled keys", []string{"lint", "--input", misspelled}, 1, []string{
			`/aproval: additional property not allowed (did you mean "approval"?)`,
			`/dryrun: additional property not allowed (did you mean "dry_run"?)`,
			"2 problem(s)",
		}, "the FKRollout input has 2 problem(s)", "policy"},
		{"workflow input check", []string{"lint", "--input", badZone}, 1,
			[]string{`input: environment "production": maintenance_window.timezone "Mars/Olympus_Mons"`}, "1 problem(s)", ""},
		{"policy refusal", []string{"lint", "--input", exampleInput, "--config", strict}, 1,
			[]string{`policy: environment "production" has no approval policy on this worker`}, "problem(s)", "valid"},
		{"policy accepts (development mode)", []string{"lint", "--input", exampleInput, "--config", devMode}, 0,
			[]string{"note: development mode", "the worker policy accepts it"}, "", "problem(s)"},
		{"a refusal with a '; ' inside stays one problem", []string{"lint", "--input", inlineWorkload, "--config", devMode}, 1,
			[]string{"policy: perf.workload_yaml: inline SQL is not accepted from the rollout input; name a workload from the worker configuration (perf.workloads)\n", "1 problem(s)"}, "", ""},
		{"skip the policy does not allow", []string{"lint", "--input", skipsPerf, "--config", devMode}, 1,
			[]string{`policy: skip: "perf" would turn off the perf phase`, "policy.allow_skip: none"}, "", "valid"},
		{"skip the policy allows", []string{"lint", "--input", skipsPerf, "--config", allowPerf}, 0,
			[]string{"the worker policy accepts it"}, "", "problem(s)"},
		{"no window for the last environment", []string{"lint", "--input", noWindow, "--config", allowPerf}, 1,
			[]string{"policy: environments[1] (production): the last environment needs a maintenance_window"}, "", "valid"},
		{"enabled false no longer turns a phase off", []string{"lint", "--input", edited("perf-off.json", func(m map[string]any) {
			m["perf"].(map[string]any)["enabled"] = false
		})}, 1, []string{`input: perf.enabled false does not turn it off: it runs unless skip lists "perf"`}, "", "valid"},
		{"fleet input", []string{"lint", "--input", fleetInput, "--fleet"}, 0, []string{"valid FKFleetRollout input"}, "", ""},
		{"fleet input, policy", []string{"lint", "--input", fleetInput, "--fleet", "--config", strict}, 1,
			[]string{`policy: environment "tenant_a" has no approval policy`, `policy: environment "fleet" has no approval policy`}, "", ""},
		{"fleet skip the policy does not allow", []string{"lint", "--input", fleetSkips, "--fleet", "--config", allowPerf}, 1,
			[]string{`policy: skip: "full_backup" would turn off the last environment's full backup`, "(policy.allow_skip: perf)", "1 problem(s)"}, "", "valid"},
		{"fleet without a window and none skipped", []string{"lint", "--input", fleetInput, "--fleet", "--config", devMode}, 1,
			[]string{"policy: maintenance_window: each target of a fleet is the last environment of its own rollout and needs one"}, "", "valid"},
		{"fleet skip name checked without a config", []string{"lint", "--input", edited("fleet-bad-skip.json", func(m map[string]any) {
			for _, k := range []string{"environments", "perf", "monitor", "approval", "thresholds"} {
				delete(m, k)
			}
			m["targets"] = []string{"tenant_a"}
			m["skip"] = []string{"watch"}
		}), "--fleet"}, 1, []string{"/skip/0: value must be one of 'perf', 'monitor', 'window', 'full_backup'"}, "", "valid"},
		{"fleet input as a rollout's", []string{"lint", "--input", fleetInput}, 1,
			[]string{"/environments: required property is missing", "/targets: additional property not allowed"}, "", ""},
		{"fleet misspelled", []string{"lint", "--input", fleetTwice, "--fleet"}, 1,
			[]string{`/batchsize: additional property not allowed (did you mean "batch_size"?)`}, "", "listed twice"},
		{"missing file", []string{"lint", "--input", filepath.Join(dir, "nope.json")}, 3, nil, "nope.json", ""},
		{"unreadable config", []string{"lint", "--input", exampleInput, "--config", filepath.Join(dir, "nope.yaml")}, 3, nil, "nope.yaml", ""},
		{"--plan and --input", []string{"lint", "--input", exampleInput, "--plan", "x.sql"}, 2, nil, "one or the other", ""},
		{"--fleet without --input", []string{"lint", "--plan", migrationSQL, "--fleet"}, 2, nil, "need --input", ""},
		{"flag package spelling", []string{"lint", "-input", exampleInput}, 0, []string{"valid FKRollout input"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := cli(t, c.args...)
			assert.Equal(t, c.code, code, "stdout: %s\nstderr: %s", out, errs)
			for _, s := range c.stdout {
				assert.Contains(t, out, s)
			}
			if c.notStdout != "" {
				assert.NotContains(t, out, c.notStdout)
			}
			assert.Contains(t, errs, c.stderr)
		})
	}
}

func TestLintInputJSON(t *testing.T) {
	dir := t.TempDir()
	bad := writeInputFile(t, dir, "bad.json", `{"plan":"x","requester":"rita@example.com","environments":[{"name":"staging","maintenance_windw":{}}]}`)
	code, out, _ := cli(t, "lint", "--input", bad, "--json")
	assert.Equal(t, 1, code)
	var rep inputLintReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.False(t, rep.Valid)
	assert.Equal(t, "FKRollout", rep.Workflow)
	assert.Equal(t, []inputProblem{{Source: "schema", Path: "/environments/0/maintenance_windw",
		Message: `additional property not allowed (did you mean "maintenance_window"?)`}}, rep.Problems)

	code, out, _ = cli(t, "lint", "--input", exampleInput, "--json")
	assert.Equal(t, 0, code)
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	assert.True(t, rep.Valid)
	assert.Empty(t, rep.Problems)
	assert.True(t, strings.Contains(out, `"problems": []`), "an empty list, not null")
}

func writeInputFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}
