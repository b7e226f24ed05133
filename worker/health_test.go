package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/testkit/devserver"
	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// /healthz says the process is up from the first moment; /readyz says
// whether the worker can do its job: Temporal answers its health check and
// every environment's database accepts a connection, within seconds when
// something is down, naming what is.
func TestHealthAndReadiness(t *testing.T) {
	srv := devserver.Start(t, rollout.SearchAttributes())
	db := pgtest.New(t)
	m, err := serveMetrics("127.0.0.1:0", discardLogger())
	require.NoError(t, err)
	defer m.Close(time.Second)
	base := "http://" + m.Addr

	code, body := get(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = get(t, base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code, "not ready before the worker started")
	assert.Contains(t, body, "worker: starting")

	c := srv.Client()
	cfg := &config.Config{Environments: map[string]config.Environment{
		"staging": {DSN: db.DSN},
		// Nothing listens on port 1: refused at once.
		"production": {DSN: "postgres://fkr:hunter2@127.0.0.1:1/app?sslmode=disable"},
	}}
	m.Ready.Set(readinessChecks(cfg, c), cfg.Secrets())
	start := time.Now()
	code, body = get(t, base+"/readyz")
	assert.Less(t, time.Since(start), readyTimeout+time.Second)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, body, "environment production: ")
	assert.Contains(t, body, "environment staging: ok")
	assert.Contains(t, body, "temporal: ok")
	assert.NotContains(t, body, "hunter2")

	delete(cfg.Environments, "production")
	m.Ready.Set(readinessChecks(cfg, c), cfg.Secrets())
	code, body = get(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "environment staging: ok\ntemporal: ok\n", body)

	// The container health check: -probe exits 0 on 200 only.
	var out, errb bytes.Buffer
	assert.Equal(t, 0, cli([]string{"-probe", base + "/readyz"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "temporal: ok")

	// Temporal gone: not ready, with the reason.
	require.NoError(t, srv.Stop())
	code, body = get(t, base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Regexp(t, `(?m)^temporal: .+`, body)
	assert.NotContains(t, body, "temporal: ok")
	errb.Reset()
	assert.Equal(t, 1, cli([]string{"-probe", base + "/readyz"}, io.Discard, &errb))
	assert.Contains(t, errb.String(), "503 Service Unavailable")
	assert.Equal(t, 1, cli([]string{"-probe", "http://127.0.0.1:1/readyz"}, io.Discard, io.Discard), "nothing listening")
}

// -h and --help print the usage and exit 0 before any configuration is
// read or Temporal dialed (here the address answers nothing and the
// configuration file does not exist).
func TestHelpAndVersionNeedNoTemporal(t *testing.T) {
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	t.Setenv(config.EnvVar, "/nonexistent/fkrollout.yaml")
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"-h"}, 0, "Usage: worker", ""},
		{[]string{"--help"}, 0, "FKROLLOUT_MAX_CONCURRENT_ACTIVITIES", ""},
		{[]string{"-version"}, 0, buildVersion(), ""},
		{[]string{"-bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"serve"}, 2, "", `unexpected arguments ["serve"]`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			start := time.Now()
			assert.Equal(t, tc.code, cli(tc.args, &out, &errb))
			assert.Less(t, time.Since(start), time.Second)
			if tc.stdout != "" {
				assert.Contains(t, out.String(), tc.stdout)
			}
			if tc.stderr != "" {
				assert.Contains(t, errb.String(), tc.stderr)
				assert.Contains(t, errb.String(), "Usage: worker", "a usage error shows the usage")
			}
		})
	}
	assert.NotEmpty(t, buildVersion())
}

// The worker's limits come from the configuration, by default sized to the
// pools rather than the SDK's thousand concurrent activities.
func TestWorkerOptionsSizedToPools(t *testing.T) {
	env := map[string]string{
		"FKROLLOUT_DSN_STAGING":    "postgres://u@h/s",
		"FKROLLOUT_DSN_PRODUCTION": "postgres://u@h/p?pool_max_conns=8",
	}
	lookup := func(k string) (string, bool) {
		if k == "\x00names" {
			return "FKROLLOUT_DSN_STAGING\nFKROLLOUT_DSN_PRODUCTION", true
		}
		v, ok := env[k]
		return v, ok
	}
	cfg, err := config.LoadFrom("", lookup)
	require.NoError(t, err)
	o := workerOptions(cfg)
	assert.Equal(t, 4+8+4, o.MaxConcurrentActivityExecutionSize)
	assert.Equal(t, 16, o.MaxConcurrentLocalActivityExecutionSize)
	assert.Equal(t, 100, o.MaxConcurrentWorkflowTaskExecutionSize)
	assert.Equal(t, 2, o.MaxConcurrentWorkflowTaskPollers)
	assert.Equal(t, 2, o.MaxConcurrentActivityTaskPollers)
	assert.Equal(t, 20*time.Second, o.WorkerStopTimeout)
}
