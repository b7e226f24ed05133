package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/fkrollout/fkrollout/workflows/rollout"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/notify"
)

func TestBuildInput(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "migration.sql")
	require.NoError(t, os.WriteFile(planFile, []byte("ALTER TABLE a ADD CONSTRAINT fk_a_b FOREIGN KEY (b_id) REFERENCES b(id) NOT VALID;"), 0o600))
	now := time.Date(2026, 5, 1, 13, 37, 0, 0, time.UTC)

	t.Run("demo flags", func(t *testing.T) {
		in, err := buildInput(startOptions{planFile: planFile, requester: "rita", envs: "staging, production", windowNow: true, follow: followOptions{demo: true}, minProd: 2}, now)
		require.NoError(t, err)
		assert.Equal(t, "rita", in.Requester)
		require.Len(t, in.Environments, 2)
		assert.Nil(t, in.Environments[0].MaintenanceWindow)
		assert.Equal(t, "13:36", in.Environments[1].MaintenanceWindow.Start)
		assert.Equal(t, []string{demoApprover, demoApprover2}, in.Approval.Default.Approvers)
		assert.Equal(t, 2, in.Approval.Gates["promotion/production"].MinApprovals)
		assert.NotContains(t, in.Approval.Default.Approvers, "rita", "the demo never lets the requester approve")
	})
	t.Run("window with zone", func(t *testing.T) {
		in, err := buildInput(startOptions{planFile: planFile, requester: "rita", envs: "production", window: "02:00/2h/Asia/Jakarta"}, now)
		require.NoError(t, err)
		assert.Equal(t, &rollout.MaintenanceWindow{Start: "02:00", Duration: "2h", Timezone: "Asia/Jakarta"}, in.Environments[0].MaintenanceWindow)
	})
	t.Run("input file", func(t *testing.T) {
		in, err := buildInput(startOptions{inputFile: "../workflows/testdata/example-input.json"}, now)
		require.NoError(t, err)
		assert.Equal(t, "rita@example.com", in.Requester)
		assert.Equal(t, 2, in.Approval.Gates["promotion/production"].MinApprovals)
		assert.True(t, in.Monitor.Enabled)
	})
	t.Run("perf and a short monitor", func(t *testing.T) {
		in, err := buildInput(startOptions{planFile: planFile, requester: "rita", envs: "staging,production", perf: 10 * time.Second, perfWorkload: "demo",
			monitor: time.Minute, monitorInterval: 15 * time.Second, monitorBaseline: 15 * time.Second, gateTimeout: 24 * time.Hour}, now)
		require.NoError(t, err)
		require.NotNil(t, in.Perf)
		assert.Equal(t, rollout.PerfInput{Enabled: true, Workload: "demo", Duration: "10s", Warmup: "2s"}, *in.Perf)
		assert.Equal(t, rollout.MonitorInput{Enabled: true, Duration: "1m", Interval: "15s", BaselinePeriod: "15s"}, in.Monitor)
		assert.Equal(t, "24h", in.Approval.Default.Timeout, "durations go to the workflow as people write them")
	})
	t.Run("monitor interval alone configures the default watch", func(t *testing.T) {
		in, err := buildInput(startOptions{planFile: planFile, requester: "rita", envs: "staging", monitorInterval: time.Minute}, now)
		require.NoError(t, err)
		assert.Equal(t, rollout.MonitorInput{Enabled: true, Interval: "1m"}, in.Monitor)
	})
	t.Run("skip", func(t *testing.T) {
		in, err := buildInput(startOptions{planFile: planFile, requester: "rita", envs: "staging", skip: []string{"perf", " monitor", "perf"}, rehearse: true}, now)
		require.NoError(t, err)
		assert.Equal(t, []string{"perf", "monitor"}, in.Skip)
		assert.True(t, in.RehearseRollback)
	})
	for name, o := range map[string]startOptions{
		"negative perf duration": {planFile: planFile, requester: "rita", envs: "staging", perf: -time.Second},
		"no plan":                {requester: "rita", envs: "staging"},
		"no requester":           {planFile: planFile, envs: "staging"},
		"bad window":             {planFile: planFile, requester: "rita", envs: "staging", window: "0200"},
		"no envs":                {planFile: planFile, requester: "rita", envs: " , "},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := buildInput(o, now)
			assert.Error(t, err)
		})
	}
}

func TestCommandsExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	// Bad usage: exit 2 before any connection is attempted.
	assert.Equal(t, 2, run(context.Background(), []string{"approve", "only-id"}, &out, &errb))
	assert.Contains(t, errb.String(), "usage: fkrollout approve ROLLOUT_ID GATE_ID")
	errb.Reset()
	assert.Equal(t, 2, run(context.Background(), []string{"start", "--requester", "rita"}, &out, &errb))
	assert.Contains(t, errb.String(), "--plan is required")
}

// TestDemoChoice: the demo's auto-approver must pick a choice each gate
// offers, including the explicit override a perf warning requires, or
// `make demo` would wait at that gate forever.
func TestDemoChoice(t *testing.T) {
	cases := []struct {
		name string
		gate approval.Gate
		want string
	}{
		{"remediation deletes", approval.Gate{Kind: notify.GateRemediation, Choices: []string{"delete", "set-null", "accept-debt", "re-audit", "abort"}}, approval.ChoiceDelete},
		{"promotion approves", approval.Gate{Kind: notify.GatePromotion, Choices: []string{"approve", "reject"}}, approval.ChoiceApprove},
		{"promotion with perf warning overrides", approval.Gate{Kind: notify.GatePromotion, Choices: []string{"approve", "approve-override", "reject"}}, approval.ChoiceApproveOverride},
		{"failure gate retries", approval.Gate{Kind: notify.GateApproval, Choices: []string{"retry", "rollback", "abort"}}, approval.ChoiceRetry},
		{"perf problem overrides", approval.Gate{Kind: notify.GateApproval, Choices: []string{"approve-override", "rollback", "abort"}}, approval.ChoiceApproveOverride},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := demoChoice(tc.gate)
			assert.Equal(t, tc.want, got)
			assert.Contains(t, tc.gate.Choices, got)
		})
	}
}
