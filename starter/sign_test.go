package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/fkrollout/fkrollout/internal/identity"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/workflows"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

var publicKeyLine = regexp.MustCompile(`public_keys: \["(ed25519:[^"]+)"\]`)

// keygen runs the CLI's keygen for name and returns the key file and the
// public key it printed for the worker's configuration.
func keygen(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, name+".key")
	code, out, errOut := starterRun(t, "keygen", "--out", path, "--identity", name)
	require.Equal(t, 0, code, errOut)
	m := publicKeyLine.FindStringSubmatch(out)
	require.Len(t, m, 2, "keygen prints the configuration snippet: %s", out)
	return path, m[1]
}

func TestKeygenRefusesToOverwriteAndReadableKeys(t *testing.T) {
	dir := t.TempDir()
	path, pub := keygen(t, dir, "alice")
	_, err := identity.ParsePublicKey(pub)
	require.NoError(t, err)
	code, _, errOut := starterRun(t, "keygen", "--out", path)
	assert.Equal(t, 3, code)
	assert.Contains(t, errOut, "exists")

	require.NoError(t, os.Chmod(path, 0o644))
	_, err = loadSigner(path, "alice")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "readable by others")
}

// TestCLISignedDecisions runs a rollout under a strict worker policy: the
// start and every decision are signed with keys made by keygen; unsigned
// decisions, decisions signed with someone else's key, unknown identities
// and a control request by a non-operator are refused with their reason.
func TestCLISignedDecisions(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	t.Setenv("TEMPORAL_ADDRESS", srv.FrontendHostPort())
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	t.Setenv("FKROLLOUT_KEY", "")
	dir := t.TempDir()
	keys := map[string]string{}
	pol := policy.Config{Identities: map[string]policy.Identity{}, Operators: []string{"olga"}, AllowSkip: policy.Safeguards,
		Environments: map[string]policy.Environment{
			"staging":    {Approvers: []string{"alice", "bob"}},
			"production": {Approvers: []string{"alice", "bob"}, MinApprovals: 2, Requires: []string{"staging"}},
		}}
	for _, name := range []string{"rita", "alice", "bob", "olga", "mallory"} {
		path, pub := keygen(t, dir, name)
		keys[name] = path
		if name != "mallory" {
			pol.Identities[name] = policy.Identity{PublicKeys: []string{pub}}
		}
	}
	require.NoError(t, pol.Validate())

	tq := "cli-signed"
	w := worker.New(srv.Client(), tq, worker.Options{})
	workflows.Register(w)
	registerStubs(w, 2, pol)
	require.NoError(t, w.Start())
	defer w.Stop()
	planFile := filepath.Join(dir, "plan.sql")
	require.NoError(t, os.WriteFile(planFile, []byte("-- the stub parses it\nALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;"), 0o600))

	// Production without staging first: refused at start by the policy.
	code, _, errOut := starterRun(t, append([]string{"start", "--plan", planFile, "--id", "cli-prod-only", "--requester", "rita", "--key", keys["rita"],
		"--environments", "production", "--task-queue", tq}, skipAll...)...)
	require.Equal(t, 0, code, errOut)
	code, out, _ := starterRun(t, "watch", "cli-prod-only", "--every", "100ms")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `requires "staging" earlier`)

	code, _, errOut = starterRun(t, append([]string{"start", "--plan", planFile, "--id", "cli-signed", "--requester", "rita", "--key", keys["rita"],
		"--environments", "staging,production", "--task-queue", tq}, skipAll...)...)
	require.Equal(t, 0, code, errOut)
	waitGate := func(id string) {
		require.Eventually(t, func() bool {
			_, out, _ := starterRun(t, "status", "cli-signed")
			return strings.Contains(out, "open gate "+id)
		}, 30*time.Second, 200*time.Millisecond, "gate %s never opened", id)
	}
	waitGate("staging/remediation/1")

	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"unsigned", []string{"remediate", "cli-signed", "staging/remediation/1", "delete", "--actor", "alice"}, "is not signed"},
		{"someone else's key", []string{"remediate", "cli-signed", "staging/remediation/1", "delete", "--actor", "alice", "--key", keys["mallory"]}, "signature does not match"},
		{"unknown identity", []string{"remediate", "cli-signed", "staging/remediation/1", "delete", "--actor", "mallory", "--key", keys["mallory"]}, "not an identity"},
		{"requester proven", []string{"remediate", "cli-signed", "staging/remediation/1", "delete", "--actor", "rita", "--key", keys["rita"]}, "four-eyes"},
		{"pause by a non-operator", []string{"pause", "cli-signed", "--actor", "mallory", "--key", keys["mallory"]}, "not an identity"},
		{"rollback by an approver", []string{"revert", "cli-signed", "--actor", "alice", "--key", keys["alice"], "--reason", "x"}, "operators"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			code, _, errOut := starterRun(t, r.args...)
			assert.Equal(t, 3, code)
			assert.Contains(t, errOut, r.want)
		})
	}
	code, out, errOut = starterRun(t, "remediate", "cli-signed", "staging/remediation/1", "delete", "--actor", "alice", "--key", keys["alice"], "--reason", "import bug")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "decided: delete")

	// Production needs two distinct signed approvals.
	waitGate("production/promotion/2")
	code, out, errOut = starterRun(t, "approve", "cli-signed", "production/promotion/2", "--actor", "alice", "--key", keys["alice"])
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "needs 1 more")
	code, out, errOut = starterRun(t, "approve", "cli-signed", "production/promotion/2", "--actor", "bob", "--key", keys["bob"], "--reason", "staging clean")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "decided: approve")

	code, out, errOut = starterRun(t, "watch", "cli-signed", "--every", "100ms")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "rollout completed")
	if *record {
		writeHistory(t, srv.Client(), "cli-signed", "../workflows/testdata/history-cli-signed.json")
	}
	st, err := queryStatus(t.Context(), srv.Client(), "cli-signed")
	require.NoError(t, err)
	var refused []string
	for _, r := range st.Refusals {
		refused = append(refused, r.Actor)
	}
	// Only signed refusal records are kept: alice's with mallory's key was
	// signed by mallory as "alice" and is dropped; rita's is kept.
	assert.Contains(t, refused, "rita")
}
