package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.temporal.io/sdk/client"

	"github.com/fkrollout/fkrollout/internal/config"
)

// readyTimeout bounds each readiness check: a probe answers within a few
// seconds whatever is down.
const readyTimeout = 3 * time.Second

// check is one named readiness check.
type check struct {
	name string
	run  func(ctx context.Context) error
}

// readiness answers /readyz: 503 until the worker has started, then 200
// when every check passes (Temporal answers its health check, every
// environment's database accepts a connection), else 503 naming the
// failing ones. /healthz only says the process is up.
type readiness struct {
	checks  atomic.Pointer[[]check]
	secrets []string // redacted from the answer
}

// Set installs the checks once the worker is running.
func (r *readiness) Set(checks []check, secrets []string) {
	r.secrets = secrets
	r.checks.Store(&checks)
}

// Check runs every check at once, each bounded by readyTimeout, and returns
// one line per check (sorted) and whether all passed.
func (r *readiness) Check(ctx context.Context) (lines []string, ok bool) {
	p := r.checks.Load()
	if p == nil {
		return []string{"worker: starting"}, false
	}
	checks := *p
	results := make([]string, len(checks))
	failed := atomic.Bool{}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, readyTimeout)
			defer cancel()
			if err := c.run(cctx); err != nil {
				failed.Store(true)
				results[i] = c.name + ": " + r.redact(err.Error())
				return
			}
			results[i] = c.name + ": ok"
		})
	}
	wg.Wait()
	sort.Strings(results)
	return results, !failed.Load()
}

func (r *readiness) redact(s string) string {
	for _, sec := range r.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	lines, ok := r.Check(req.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}

// readinessChecks are the worker's: the Temporal frontend, and each
// environment's database through a connection of its own (not the
// activities' pool, which may be busy by design).
func readinessChecks(cfg *config.Config, c client.Client) []check {
	checks := []check{{name: "temporal", run: func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}}}
	for _, name := range cfg.EnvironmentNames() {
		dsn := cfg.Environments[name].DSN
		checks = append(checks, check{name: "environment " + name, run: func(ctx context.Context) error {
			return pingDSN(ctx, dsn)
		}})
	}
	return checks
}

func pingDSN(ctx context.Context, dsn string) error {
	// Through PoolConfig: a DSN's pool_* settings are not server parameters.
	pc, err := config.PoolConfig(dsn, "fkrollout-worker-readyz")
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, pc.ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}
