package main

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// start refuses before dialing Temporal what the worker would refuse.
func TestStartChecksSafeguards(t *testing.T) {
	dir := t.TempDir()
	strict := writeInputFile(t, dir, "strict.yaml", "policy:\n  trust_client_identity: true\n")
	lenient := writeInputFile(t, dir, "lenient.yaml", "policy:\n  trust_client_identity: true\n  allow_skip: [window, perf]\n  min_watch: 1m\n")
	window := &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h"}
	input := func(skip []string, w *rollout.MaintenanceWindow, monitor string) rollout.Input {
		return rollout.Input{Plan: "x", Requester: "rita", Skip: skip, Monitor: rollout.MonitorInput{Duration: monitor},
			Environments: []rollout.EnvironmentInput{{Name: "staging"}, {Name: "production", MaintenanceWindow: w}}}
	}
	for _, c := range []struct {
		name    string
		in      rollout.Input
		config  string
		err     string
		warning string
	}{
		{name: "every safeguard on", in: input(nil, window, "")},
		{name: "no window", in: input(nil, nil, ""), err: "the last environment (production) needs a maintenance window: --window"},
		{name: "unknown skip", in: input([]string{"backup"}, window, ""), err: `skip: "backup" is not a safeguard`},
		{name: "window skipped, no config: the worker decides", in: input([]string{"window"}, nil, ""),
			warning: "window off: the last environment's maintenance window is skipped"},
		{name: "skip refused by the config", in: input([]string{"window"}, nil, ""), config: strict,
			err: `skip: "window" would turn off the last environment's maintenance window; this worker's policy does not allow that`},
		{name: "short watch refused by the config", in: input(nil, window, "1m"), config: strict,
			err: "monitor.duration 1m0s is shorter than this worker's minimum watch (policy.min_watch 24h0m0s)"},
		{name: "skips the config allows", in: input([]string{"window", "perf"}, nil, "1m"), config: lenient,
			warning: "perf off: the perf phase"},
		{name: "unreadable config", in: input(nil, window, ""), config: filepath.Join(dir, "nope.yaml"), err: "nope.yaml"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := checkSafeguards(c.in, c.config, &stderr, time.Now())
			if c.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.err)
				return
			}
			require.NoError(t, err)
			if c.warning == "" {
				assert.Empty(t, stderr.String())
			} else {
				assert.Contains(t, stderr.String(), c.warning)
			}
		})
	}
}
