package main

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	prom "github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/internal/slackbot"
	"github.com/fkrollout/fkrollout/internal/testkit/slacktest"
	"github.com/fkrollout/fkrollout/workflows/approval"
)

// TestSetupSlack checks the worker's start-up decision: no Slack is a
// working configuration that says so; half a configuration or a typo is an
// error before anything connects; secrets come from the environment and
// never reach the log.
func TestSetupSlack(t *testing.T) {
	cases := []struct {
		name    string
		yaml    string
		env     map[string]string
		wantErr string
		wantLog string
		enabled bool
	}{
		{name: "no slack section", wantLog: "Slack not configured: notifications off, decide gates from the CLI or the Temporal UI"},
		{name: "token without channel", env: map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1"},
			wantErr: "both bot_token and channel are required"},
		{name: "typo in a key", yaml: "slack:\n  channel: C1\n  signing_secrte: x\n", env: map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1"},
			wantErr: `unknown setting "signing_secrte"`},
		{name: "http mode without signing secret", yaml: "slack:\n  channel: C1\n", env: map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1"},
			wantErr: "signing_secret is required"},
		{name: "http mode without listen_addr", yaml: "slack:\n  channel: C1\n",
			env:     map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1", "FKROLLOUT_SLACK_SIGNING_SECRET": "s"},
			wantErr: "slack.listen_addr is required unless socket_mode is on"},
		{name: "http mode", yaml: "slack:\n  channel: C1\n  listen_addr: 127.0.0.1:0\n",
			env:     map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-secret-token", "FKROLLOUT_SLACK_SIGNING_SECRET": "s3cr3t-signing"},
			wantLog: "Slack on (HTTP interactions on 127.0.0.1:0), channel C1", enabled: true},
		{name: "socket mode", yaml: "slack:\n  channel: C1\n  socket_mode: true\n",
			env:     map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-secret-token", "FKROLLOUT_SLACK_APP_TOKEN": "xapp-secret-app"},
			wantLog: "Slack on (Socket Mode), channel C1", enabled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" {
				path = filepath.Join(t.TempDir(), "worker.yaml")
				require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o600))
			}
			cfg, err := config.LoadFrom(path, func(k string) (string, bool) {
				if k == "\x00names" {
					return "", true
				}
				v, ok := tc.env[k]
				return v, ok
			})
			require.NoError(t, err)
			var logBuf syncBuffer
			n, bot, err := setupSlack(cfg, nil, slog.New(slog.NewJSONHandler(&logBuf, nil)))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Contains(t, logBuf.String(), tc.wantLog)
			for _, s := range tc.env {
				assert.NotContains(t, logBuf.String(), s, "secret in the start-up log")
			}
			if !tc.enabled {
				assert.Nil(t, bot)
				assert.IsType(t, notify.LogNotifier{}, n)
				return
			}
			require.NotNil(t, bot)
			assert.IsType(t, &slackbot.Notifier{}, n)
			assert.Same(t, bot.Notifier, n)
		})
	}
}

// loadSlackConfig loads a worker configuration from yaml and env.
func loadSlackConfig(t *testing.T, yaml string, env map[string]string) *config.Config {
	t.Helper()
	path := ""
	if yaml != "" {
		path = filepath.Join(t.TempDir(), "worker.yaml")
		require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	}
	cfg, err := config.LoadFrom(path, func(k string) (string, bool) {
		if k == "\x00names" {
			return "", true
		}
		v, ok := env[k]
		return v, ok
	})
	require.NoError(t, err)
	return cfg
}

func TestSlackSignerPublicKey(t *testing.T) {
	pub := func(secret string) string {
		return identity.FormatPublicKey(identity.DeriveSlackSigner(secret).Public().(ed25519.PublicKey))
	}
	httpMode := loadSlackConfig(t, "slack:\n  channel: C1\n  listen_addr: 127.0.0.1:0\n",
		map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1", "FKROLLOUT_SLACK_SIGNING_SECRET": "s3cr3t"})
	assert.Equal(t, pub("s3cr3t"), slackSignerPublicKey(httpMode))
	socket := loadSlackConfig(t, "slack:\n  channel: C1\n  socket_mode: true\n",
		map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1", "FKROLLOUT_SLACK_APP_TOKEN": "xapp-1"})
	assert.Equal(t, pub("xapp-1"), slackSignerPublicKey(socket), "Socket Mode has no signing secret: the app token")
	assert.Empty(t, slackSignerPublicKey(loadSlackConfig(t, "", nil)), "Slack off")
	assert.Empty(t, slackSignerPublicKey(loadSlackConfig(t, "slack:\n  chanel: C1\n", nil)), "undecodable section")
}

// fakeTemporal is the slice of client.Client the Slack decider uses; any
// other call panics on the nil embedded client.
type fakeTemporal struct {
	client.Client
	runID     string
	updateErr error

	mu      sync.Mutex
	updates []client.UpdateWorkflowOptions
	signals []fakeSignal
}

type fakeSignal struct {
	workflowID, runID, name string
	arg                     any
}

func (f *fakeTemporal) DescribeWorkflowExecution(ctx context.Context, id, runID string) (*workflowservice.DescribeWorkflowExecutionResponse, error) {
	if f.runID == "" {
		return nil, serviceerror.NewNotFound("workflow not found for ID: " + id)
	}
	return &workflowservice.DescribeWorkflowExecutionResponse{WorkflowExecutionInfo: &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: id, RunId: f.runID}}}, nil
}

func (f *fakeTemporal) UpdateWorkflow(ctx context.Context, opts client.UpdateWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, opts)
	return fakeUpdateHandle{err: f.updateErr}, nil
}

func (f *fakeTemporal) SignalWorkflow(ctx context.Context, workflowID, runID, name string, arg any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, fakeSignal{workflowID, runID, name, arg})
	return nil
}

type fakeUpdateHandle struct {
	client.WorkflowUpdateHandle
	err error
}

func (h fakeUpdateHandle) Get(ctx context.Context, valuePtr any) error { return h.err }

// TestSlackDeciderSignsDecisionsAndRefusals: what the worker sends for a
// Slack click is a DecisionInput for the current run with a proof the
// workflow verifies against the Slack signer's public key (the key the
// policy carries); a refusal record is signed the same way; nothing is sent
// for a rollout that does not exist.
func TestSlackDeciderSignsDecisionsAndRefusals(t *testing.T) {
	const secret = "s3cr3t-signing"
	cfg := loadSlackConfig(t, "slack:\n  channel: C1\n  listen_addr: 127.0.0.1:0\n",
		map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1", "FKROLLOUT_SLACK_SIGNING_SECRET": secret})
	pub := slackSignerPublicKey(cfg)
	ctx := context.Background()
	now := time.Now()
	dec := slackbot.Decision{DecisionInput: approval.DecisionInput{GateID: "production/promotion/2", Choice: approval.ChoiceApprove, Actor: "alice@example.com",
		Roles: []string{"dba"}, SlackUser: "U0ALICE", Via: "slack"}, UpdateID: slackbot.UpdateID("production/promotion/2", "U0ALICE", "approve")}

	fake := &fakeTemporal{runID: "run-1"}
	d := newSlackDecider(fake, identity.DeriveSlackSigner(secret), discardLogger())
	d.now = func() time.Time { return now }
	_, err := d.Decide(ctx, "rollout-1", dec)
	require.NoError(t, err)
	require.Len(t, fake.updates, 1)
	up := fake.updates[0]
	assert.Equal(t, approval.UpdateDecide, up.UpdateName)
	assert.Equal(t, "rollout-1", up.WorkflowID)
	assert.Equal(t, "run-1", up.RunID, "sent to the run the proof names")
	assert.Equal(t, dec.UpdateID, up.UpdateID, "double clicks still share one Update")
	require.Len(t, up.Args, 1)
	in, ok := up.Args[0].(approval.DecisionInput)
	require.True(t, ok, "%T", up.Args[0])
	require.NotNil(t, in.Proof)
	assert.Equal(t, identity.SlackSigner, in.Proof.KeyID)
	assert.Equal(t, approval.DecisionInput{GateID: dec.GateID, Choice: dec.Choice, Actor: dec.Actor, Roles: dec.Roles,
		SlackUser: "U0ALICE", Via: "slack", Proof: in.Proof}, in)
	assert.NoError(t, identity.Verify(approval.DecisionClaim("rollout-1", "run-1", in), in.Proof, []string{pub}, now, time.Minute))
	assert.Error(t, identity.Verify(approval.DecisionClaim("rollout-1", "run-2", in), in.Proof, []string{pub}, now, time.Minute),
		"the proof does not move to another run")
	forged := in
	forged.Actor = "mallory@example.com"
	assert.Error(t, identity.Verify(approval.DecisionClaim("rollout-1", "run-1", forged), in.Proof, []string{pub}, now, time.Minute))
	assert.Empty(t, fake.signals)

	// A second send of the same click: a fresh nonce, the same Update ID.
	_, err = d.Decide(ctx, "rollout-1", dec)
	require.NoError(t, err)
	require.Len(t, fake.updates, 2)
	assert.NotEqual(t, in.Proof.Nonce, fake.updates[1].Args[0].(approval.DecisionInput).Proof.Nonce)

	// Refused by the validator: told as a refusal, recorded with a signed signal.
	fake.updateErr = temporal.NewApplicationError("four-eyes: alice@example.com requested this rollout", "refused")
	_, err = d.Decide(ctx, "rollout-1", dec)
	var refused *slackbot.RefusedError
	require.ErrorAs(t, err, &refused)
	require.Len(t, fake.signals, 1)
	sig := fake.signals[0]
	assert.Equal(t, fakeSignal{workflowID: "rollout-1", runID: "run-1", name: approval.SignalRecordRefusal, arg: sig.arg}, sig)
	rec, ok := sig.arg.(approval.Refusal)
	require.True(t, ok, "%T", sig.arg)
	assert.Equal(t, "slack:approve", rec.Signal)
	assert.Equal(t, "alice@example.com", rec.Actor)
	assert.Equal(t, dec.GateID, rec.GateID)
	assert.Contains(t, rec.Reason, "four-eyes")
	require.NotNil(t, rec.Proof)
	assert.NoError(t, identity.Verify(approval.RefusalClaim("rollout-1", "run-1", rec), rec.Proof, []string{pub}, now, time.Minute))

	// No such rollout: refused before any Update, nothing recorded.
	gone := &fakeTemporal{}
	d = newSlackDecider(gone, identity.DeriveSlackSigner(secret), discardLogger())
	_, err = d.Decide(ctx, "rollout-gone", dec)
	require.ErrorAs(t, err, &refused)
	assert.Contains(t, refused.Reason, "rollout-gone")
	assert.Empty(t, gone.updates)
	assert.Empty(t, gone.signals)
}

// TestSlackRejectionsAreCounted: the worker's Slack endpoint reports each
// rejected request to fkrollout_slack_rejected_requests_total{reason}.
func TestSlackRejectionsAreCounted(t *testing.T) {
	reg := prom.NewRegistry()
	require.NoError(t, registerSlackMetrics(reg))
	require.NoError(t, registerSlackMetrics(reg), "registering twice is harmless")
	counts := func() map[string]float64 {
		mfs, err := reg.Gather()
		require.NoError(t, err)
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetName() != "fkrollout_slack_rejected_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
		return out
	}
	before := counts()
	for _, r := range slackbot.RejectReasons {
		assert.Contains(t, before, r, "every reason is exported from the start")
	}

	cfg := loadSlackConfig(t, "slack:\n  channel: C1\n  listen_addr: 127.0.0.1:0\n",
		map[string]string{"FKROLLOUT_SLACK_BOT_TOKEN": "xoxb-1", "FKROLLOUT_SLACK_SIGNING_SECRET": "s3cr3t"})
	var logBuf syncBuffer
	_, bot, err := setupSlack(cfg, nil, slog.New(slog.NewJSONHandler(&logBuf, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bot.Interactions.Shutdown(context.Background()) })
	body := "command=%2Ffkrollout&text=help&user_id=U0X"
	forged := slacktest.NewSignedRequest("not-the-secret", time.Now(), body)
	w := httptest.NewRecorder()
	bot.Handler().ServeHTTP(w, forged)
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	stale := slacktest.NewSignedRequest("s3cr3t", time.Now().Add(-time.Hour), body)
	w = httptest.NewRecorder()
	bot.Handler().ServeHTTP(w, stale)
	assert.Equal(t, http.StatusUnauthorized, w.Code)

	after := counts()
	assert.Equal(t, before[slackbot.RejectBadSignature]+1, after[slackbot.RejectBadSignature])
	assert.Equal(t, before[slackbot.RejectStale]+1, after[slackbot.RejectStale])
	assert.True(t, strings.Contains(logBuf.String(), `"reason":"bad_signature"`), "and logged")
}
