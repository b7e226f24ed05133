package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func loadYAML(t *testing.T, body string, env map[string]string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fkrollout.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return LoadFrom(path, lookupFrom(env))
}

// Every bad field is named by its path, with what is wrong with it; a typo
// in a duration never silently becomes a default.
func TestValidateNamesTheFieldPath(t *testing.T) {
	const envs = `
environments:
  staging:
    dsn: postgres://x@y/z
`
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"smoke check timeout", envs + `    smoke_checks:
      - {name: api, url: "http://api/health", timeout: 10ss}
`, nil, `environments.staging.smoke_checks[0] (api).timeout: "10ss": want a positive duration`},
		{"smoke check relative url", envs + `    smoke_checks:
      - {name: api, url: "/health"}
`, nil, `environments.staging.smoke_checks[0] (api).url: "/health": want an http:// or https:// URL`},
		{"smoke check status", envs + `    smoke_checks:
      - {name: api, url: "http://api/health", expect_status: 2000}
`, nil, `environments.staging.smoke_checks[0] (api).expect_status: 2000 is not an HTTP status`},
		{"smoke check method", envs + `    smoke_checks:
      - {name: api, url: "http://api/health", method: FETCH}
`, nil, `environments.staging.smoke_checks[0] (api).method: "FETCH" is not an HTTP method`},
		{"smoke check uses a value nobody captured", envs + `    smoke_checks:
      - {name: query, url: "http://api/orders/${order_id}"}
`, nil, `environments.staging.smoke_checks[0] (query).url: ${order_id} is not captured by an earlier check`},
		{"smoke cleanup assertion", envs + `    smoke_checks:
      - {name: create, url: "http://api/orders", capture: {order_id: {json: data.id}}}
    smoke_cleanup:
      - {name: delete, url: "http://api/orders/${order_id}", expect_body: [{json: "a[", equals: x}]}
`, nil, `environments.staging.smoke_cleanup[0] (delete).expect_body[0].json: json path "a[": [ without ]`},
		{"deploy hook timeout", envs + `    deploy_hooks:
      - {name: restart, command: [true], timeout: 5 minutes}
`, nil, `environments.staging.deploy_hooks[0].timeout: time: unknown unit " minutes" in duration "5 minutes"`},
		{"rollback hook timeout", envs + `    rollback_hooks:
      before: [{name: stop, command: [true], timeout: soon}]
`, nil, `environments.staging.rollback_hooks.before[0].timeout: time: invalid duration "soon"`},
		{"rollback hook without a command", envs + `    rollback_hooks:
      after: [{name: start}]
`, nil, `environment "staging": rollback_hooks.after[0] needs a name and a command`},
		{"negative lock timeout", "lock: {lock_timeout: -1s}\n", nil, `lock.lock_timeout: "-1s" is negative`},
		{"lock attempts", "lock: {attempts: -2}\n", nil, `lock.attempts: -2 is negative`},
		{"audit timeout", "audit: {statement_timeout: 5}\n", nil, `audit.statement_timeout: time: missing unit in duration "5"`},
		{"audit parallelism", "audit: {parallelism: -1}\n", nil, `audit.parallelism: -1 is negative`},
		{"audit chunk pages", "audit: {chunk_pages: -5}\n", nil, `audit.chunk_pages: -5 is negative`},
		{"audit chunk pause not a duration", "audit: {chunk_pause: soon}\n", nil, `audit.chunk_pause: time: invalid duration "soon"`},
		{"audit chunk pause negative", "audit: {chunk_pause: -1s}\n", nil, `audit.chunk_pause: "-1s" is negative`},
		{"audit chunk pause too long", "audit: {chunk_pause: 5m}\n", nil, `audit.chunk_pause: 5m is longer than 1m0s`},
		{"stop timeout", "worker: {stop_timeout: forever}\n", nil, `worker.stop_timeout: time: invalid duration "forever"`},
		{"activity limit", "worker: {max_concurrent_activities: -3}\n", nil, `worker.max_concurrent_activities: -3 is negative`},
		{"activity limit from env", "", map[string]string{"FKROLLOUT_MAX_CONCURRENT_ACTIVITIES": "many"}, `FKROLLOUT_MAX_CONCURRENT_ACTIVITIES: "many" is not a number`},
		{"pollers beyond slots", "worker: {max_concurrent_activities: 2, activity_task_pollers: 5}\n", nil, `worker.activity_task_pollers: 5 pollers for 2 activity slots`},
		{"metrics address", "metrics: {listen_addr: 9464}\n", nil, `metrics.listen_addr: address 9464: missing port in address`},
		{"metrics port", "metrics: {listen_addr: \":http-alt\"}\n", nil, `metrics.listen_addr: port "http-alt" is not a port number`},
		{"ui url", "ui_url: localhost:8233\n", nil, `ui_url: "localhost:8233" is not an absolute http(s) URL`},
		{"prometheus url", "prometheus: {url: prometheus:9090}\n", nil, `prometheus.url: "prometheus:9090" is not an absolute http(s) URL`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.yaml, tc.env)
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// The worker section's defaults are sized to the pools: each environment's
// pool (pool_max_conns of its DSN, else 4) plus 4 slots for activities that
// hold no connection.
func TestWorkerDefaultsSizedToPools(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		env  map[string]string
		want int
	}{
		{"no environment", "", nil, 4},
		{"two default pools", "", map[string]string{"FKROLLOUT_DSN_STAGING": "postgres://x@y/s", "FKROLLOUT_DSN_PRODUCTION": "postgres://x@y/p"}, 12},
		{"a DSN's pool size counts", "", map[string]string{"FKROLLOUT_DSN_STAGING": "postgres://x@y/s?pool_max_conns=10", "FKROLLOUT_DSN_PRODUCTION": "host=y dbname=p pool_max_conns=2"}, 16},
		{"configured wins", "worker: {max_concurrent_activities: 7}\n", map[string]string{"FKROLLOUT_DSN_STAGING": "postgres://x@y/s"}, 7},
		{"variable wins", "worker: {max_concurrent_activities: 7}\n", map[string]string{"FKROLLOUT_MAX_CONCURRENT_ACTIVITIES": "3"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadYAML(t, tc.yaml, tc.env)
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.Worker.MaxConcurrentActivities)
			assert.Equal(t, tc.want, c.Worker.MaxConcurrentLocalActivities)
			assert.Equal(t, 100, c.Worker.MaxConcurrentWorkflowTasks)
			assert.Equal(t, 2, c.Worker.WorkflowTaskPollers)
			assert.Equal(t, 2, c.Worker.ActivityTaskPollers)
			assert.Equal(t, 20*time.Second, c.Worker.StopTimeoutOr(time.Hour))
		})
	}
}

func TestPoolConfigHonoursTheDSN(t *testing.T) {
	for _, tc := range []struct {
		dsn      string
		wantSize int32
		wantIdle time.Duration
		wantApp  string
	}{
		{"postgres://u@h/db", DefaultPoolMaxConns, time.Minute, "fkrollout-worker"},
		{"postgres://u@h/db?pool_max_conns=12&pool_max_conn_idle_time=5m", 12, 5 * time.Minute, "fkrollout-worker"},
		{"host=h dbname=db pool_max_conns=6 application_name=ops", 6, time.Minute, "ops"},
	} {
		t.Run(tc.dsn, func(t *testing.T) {
			cfg, err := PoolConfig(tc.dsn, "fkrollout-worker")
			require.NoError(t, err)
			assert.Equal(t, tc.wantSize, cfg.MaxConns)
			assert.Equal(t, tc.wantIdle, cfg.MaxConnIdleTime)
			assert.Equal(t, tc.wantApp, cfg.ConnConfig.RuntimeParams["application_name"])
			assert.Equal(t, int(tc.wantSize), PoolMaxConns(tc.dsn))
		})
	}
	_, err := PoolConfig("postgres://u:s3cret@h:notaport/db", "x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "s3cret")
}
