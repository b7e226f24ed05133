package activities

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/smoke"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

func runHooks(t *testing.T, cfg *config.Config) []rollout.HookResult {
	t.Helper()
	env, _ := newEnv(t, cfg)
	v, err := env.ExecuteActivity(rollout.ActRunDeployHooks, rollout.HooksInput{Environment: "production", RolloutID: "r-9"})
	require.NoError(t, err)
	var res []rollout.HookResult
	require.NoError(t, v.Get(&res))
	return res
}

// A hook sees the minimal base, the rollout's id and environment, its env:
// map and what inherit_env names: none of the worker's secrets (every
// environment's DSN, the Slack tokens, cloud credentials).
func TestDeployHookEnvironmentIsOnlyWhatItsConfigNames(t *testing.T) {
	t.Setenv("FKROLLOUT_DSN_PRODUCTION", "postgres://app:dsn-in-worker-env@db/apms")
	t.Setenv("FKROLLOUT_SLACK_BOT_TOKEN", "xoxb-worker-slack-token")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "aws-worker-secret-key")
	t.Setenv("DEPLOY_TOKEN", "inherited-deploy-token")
	t.Setenv("LANG", "C.UTF-8")
	cfg := cfgWith(map[string]config.Environment{"production": {
		DSN: "postgres://app:dsn-in-config@db/apms",
		DeployHooks: []config.Hook{
			{Name: "env", Command: []string{"env"}},
			{Name: "inherit", Command: []string{"sh", "-c", `test "$DEPLOY_TOKEN" = inherited-deploy-token && test "$API_URL" = https://api.example.com && echo inherited ok`},
				Env: map[string]string{"API_URL": "https://api.example.com"}, InheritEnv: []string{"DEPLOY_TOKEN", "NOT_SET_ANYWHERE"}},
		},
	}})
	res := runHooks(t, cfg)
	require.Len(t, res, 2)
	require.True(t, res[0].OK, res[0].Output)
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(res[0].Output), "\n") {
		k, _, _ := strings.Cut(line, "=")
		names = append(names, k)
	}
	// sh may add PWD, SHLVL or _ itself: only what the worker passes is checked.
	for _, n := range names {
		assert.Contains(t, []string{"PATH", "HOME", "LANG", "TZ", "FKROLLOUT_ROLLOUT_ID", "FKROLLOUT_RUN_ID", "FKROLLOUT_ENVIRONMENT", "PWD", "SHLVL", "_"}, n, "variable %s reached the hook", n)
	}
	assert.Contains(t, res[0].Output, "FKROLLOUT_ROLLOUT_ID=r-9")
	assert.Contains(t, res[0].Output, "FKROLLOUT_ENVIRONMENT=production")
	assert.Contains(t, res[0].Output, "LANG=C.UTF-8")
	for _, secret := range []string{"dsn-in-worker-env", "xoxb-worker-slack-token", "aws-worker-secret-key", "inherited-deploy-token", "FKROLLOUT_DSN_PRODUCTION", "AWS_SECRET_ACCESS_KEY"} {
		assert.NotContains(t, res[0].Output, secret)
	}
	assert.True(t, res[1].OK, "inherit_env and env reach the hook: %s", res[1].Output)
	assert.Contains(t, res[1].Output, "inherited ok")
}

// With One, each call runs the first hook not done, and a hook named in
// Done never runs again: the workflow records each success and resumes
// after it (a retry, a worker crash).
func TestDeployHooksResumeAfterTheLastSuccess(t *testing.T) {
	log := filepath.Join(t.TempDir(), "ran")
	hook := func(name string) config.Hook {
		return config.Hook{Name: name, Command: []string{"sh", "-c", `echo "` + name + ` $FKROLLOUT_RUN_ID" >> "$LOG"`}, Env: map[string]string{"LOG": log}}
	}
	cfg := cfgWith(map[string]config.Environment{"production": {DSN: "postgres://x@y/z",
		DeployHooks: []config.Hook{hook("migrate"), hook("restart"), hook("restart"), hook("warm")}}})
	env, _ := newEnv(t, cfg)
	for _, c := range []struct {
		name string
		in   rollout.HooksInput
		ran  []string
	}{
		{"the first", rollout.HooksInput{One: true}, []string{"migrate"}},
		{"after the first", rollout.HooksInput{One: true, Done: []string{"migrate"}}, []string{"restart"}},
		{"a repeated name counts once per success", rollout.HooksInput{One: true, Done: []string{"migrate", "restart"}}, []string{"restart"}},
		{"the rest at once", rollout.HooksInput{Done: []string{"restart", "migrate"}}, []string{"restart", "warm"}},
		{"none left", rollout.HooksInput{One: true, Done: []string{"migrate", "restart", "restart", "warm"}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(log, nil, 0o600))
			in := c.in
			in.Environment, in.RolloutID, in.RunID = "production", "r-1", "run-7"
			v, err := env.ExecuteActivity(rollout.ActRunDeployHooks, in)
			require.NoError(t, err)
			var res []rollout.HookResult
			require.NoError(t, v.Get(&res))
			var names, lines []string
			for _, r := range res {
				require.True(t, r.OK, r.Output)
				names = append(names, r.Name)
			}
			b, err := os.ReadFile(log)
			require.NoError(t, err)
			for _, n := range c.ran {
				lines = append(lines, n+" run-7")
			}
			assert.Equal(t, c.ran, names)
			assert.Equal(t, strings.Join(lines, "\n"), strings.TrimSpace(string(b)), "what ran, with the run id")
		})
	}
}

// The hook's own secrets are redacted from what it prints, whether they came
// from its env: map or from inherit_env.
func TestDeployHookOutputRedactsItsEnvAndInheritedValues(t *testing.T) {
	t.Setenv("DEPLOY_TOKEN", "inherited-deploy-token")
	cfg := cfgWith(map[string]config.Environment{"production": {
		DSN: "postgres://app@db/apms",
		DeployHooks: []config.Hook{{Name: "leaky", Command: []string{"sh", "-c", `echo "token=$API_TOKEN deploy=$DEPLOY_TOKEN"; echo "curl: 401 for $API_TOKEN" >&2; exit 1`},
			Env: map[string]string{"API_TOKEN": "s3cr3t-api-token"}, InheritEnv: []string{"DEPLOY_TOKEN"}}},
	}})
	res := runHooks(t, cfg)
	require.Len(t, res, 1)
	assert.False(t, res[0].OK)
	assert.Contains(t, res[0].Output, "token=[redacted] deploy=[redacted]")
	assert.Contains(t, res[0].Output, "curl: 401 for [redacted]")
	assert.NotContains(t, res[0].Output, "s3cr3t-api-token")
	assert.NotContains(t, res[0].Output, "inherited-deploy-token")
}

func TestHookEnvOrder(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"PATH": "/bin", "HOME": "/home/w", "SHARED": "from-worker", "SECRET": "worker-only"}[k]
		return v, ok
	}
	env, secrets := hookEnv(config.Hook{Env: map[string]string{"SHARED": "from-hook", "FKROLLOUT_ENVIRONMENT": "spoofed"}, InheritEnv: []string{"SHARED", "MISSING"}},
		rollout.HooksInput{RolloutID: "r-1", RunID: "run-1", Environment: "staging"}, lookup)
	assert.Equal(t, []string{"FKROLLOUT_ENVIRONMENT=staging", "FKROLLOUT_ROLLOUT_ID=r-1", "FKROLLOUT_RUN_ID=run-1", "HOME=/home/w", "PATH=/bin", "SHARED=from-hook"}, env)
	assert.ElementsMatch(t, []string{"from-worker", "from-hook", "spoofed"}, secrets)
}

// A smoke check's header values (Authorization: Bearer ...) never come back
// in its detail, even when the service echoes the credential alone.
func TestSmokeCheckDetailRedactsHeaderValues(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		_, _ = w.Write([]byte(`{"error":"token ` + tok + ` expired","key":"` + r.Header.Get("X-Api-Key") + `","auth":"` + r.Header.Get("Authorization") + `"}`))
	}))
	defer srv.Close()
	cfg := cfgWith(map[string]config.Environment{"production": {DSN: "postgres://x@y/z", SmokeChecks: []config.SmokeCheck{
		{Name: "authed", URL: srv.URL + "/me", Headers: map[string]string{"Authorization": "Bearer smoke-bearer-123", "X-Api-Key": "smoke-api-key-456"}},
	}}})
	env, _ := newEnv(t, cfg)
	v, err := env.ExecuteActivity(rollout.ActRunSmokeChecks, rollout.HooksInput{Environment: "production"})
	require.NoError(t, err)
	var res []rollout.SmokeResult
	require.NoError(t, v.Get(&res))
	require.Len(t, res, 1)
	assert.False(t, res[0].OK)
	assert.Equal(t, 401, res[0].Status)
	assert.Contains(t, res[0].Detail, "token [redacted] expired")
	assert.NotContains(t, res[0].Detail, "smoke-bearer-123")
	assert.NotContains(t, res[0].Detail, "smoke-api-key-456")
}

// Through the activity: a create → query chain with a failing assertion,
// a cleanup that still runs with the captured id, a log command that sees
// the rollout's id (FKROLLOUT_ROLLOUT_ID) and no worker secret.
func TestSmokeChecksChainCleanupAndLogThroughTheActivity(t *testing.T) {
	t.Setenv("FKROLLOUT_DSN_PRODUCTION", "postgres://app:dsn-in-worker-env@db/apms")
	var deleted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"data":{"id":"wi-77"}}`))
		case r.Method == http.MethodGet:
			_, _ = w.Write([]byte(`{"id":"` + strings.TrimPrefix(r.URL.Path, "/wi/") + `","state":"draft"}`))
		case r.Method == http.MethodDelete:
			deleted = append(deleted, r.URL.Path)
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	eq := func(s string) *string { return &s }
	cfg := cfgWith(map[string]config.Environment{"production": {DSN: "postgres://x@y/z",
		SmokeChecks: []config.SmokeCheck{
			{Name: "create", Method: "POST", URL: srv.URL + "/wi", ExpectStatus: 201, Capture: map[string]smoke.Capture{"id": {JSON: "data.id"}},
				ExpectLog: &smoke.LogCheck{Command: []string{"sh", "-c", `echo "created for $FKROLLOUT_ROLLOUT_ID dsn=[$FKROLLOUT_DSN_PRODUCTION]"`}, Pattern: `created for r-42 dsn=\[\]`, Within: "1s"}},
			{Name: "query", URL: srv.URL + "/wi/${id}", ExpectBody: []smoke.Assertion{{JSON: "id", Equals: eq("${id}")}, {JSON: "state", Equals: eq("active")}}},
		},
		SmokeCleanup: []config.SmokeCheck{{Name: "delete", Method: "DELETE", URL: srv.URL + "/wi/${id}", ExpectStatus: 204}},
	}})
	require.NoError(t, cfg.Validate())
	env, _ := newEnv(t, cfg)
	v, err := env.ExecuteActivity(rollout.ActRunSmokeChecks, rollout.HooksInput{Environment: "production", RolloutID: "r-42"})
	require.NoError(t, err)
	var res []rollout.SmokeResult
	require.NoError(t, v.Get(&res))
	require.Len(t, res, 3)
	assert.True(t, res[0].OK, "create: %v", res[0].Failures)
	assert.Equal(t, []string{"id"}, res[0].Captured)
	assert.False(t, res[1].OK)
	assert.Equal(t, []string{`expect_body[1]: state is "draft", want "active"`}, res[1].Failures)
	assert.Equal(t, "cleanup", res[2].Kind)
	assert.True(t, res[2].OK, "cleanup: %v", res[2].Failures)
	assert.Equal(t, []string{"/wi/wi-77"}, deleted)
}

// Set picks the rollback hooks instead of the deploy hooks; an unknown set
// is a configuration error a retry cannot fix.
func TestRollbackHookSets(t *testing.T) {
	echo := func(name string) config.Hook {
		return config.Hook{Name: name, Command: []string{"sh", "-c", "echo " + name + " $FKROLLOUT_RUN_ID"}}
	}
	cfg := cfgWith(map[string]config.Environment{"production": {DSN: "postgres://x@y/z",
		DeployHooks:   []config.Hook{echo("deploy")},
		RollbackHooks: config.RollbackHooks{Before: []config.Hook{echo("stop-api")}, After: []config.Hook{echo("start-api")}}}})
	env, _ := newEnv(t, cfg)
	for _, c := range []struct{ set, want string }{{"", "deploy"}, {rollout.HookSetRollbackBefore, "stop-api"}, {rollout.HookSetRollbackAfter, "start-api"}} {
		v, err := env.ExecuteActivity(rollout.ActRunDeployHooks, rollout.HooksInput{Environment: "production", RunID: "run-3", Set: c.set})
		require.NoError(t, err)
		var res []rollout.HookResult
		require.NoError(t, v.Get(&res))
		require.Len(t, res, 1, c.set)
		assert.Equal(t, c.want, res[0].Name)
		assert.Equal(t, c.want+" run-3", strings.TrimSpace(res[0].Output))
	}
	_, err := env.ExecuteActivity(rollout.ActRunDeployHooks, rollout.HooksInput{Environment: "production", Set: "rollback_during"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `hook set "rollback_during"`)
	assert.Contains(t, err.Error(), steps.ErrTypeConfig)
}
