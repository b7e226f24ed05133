// Package activities is the worker side of the rollout: each activity
// resolves an environment name to a database through the worker's
// configuration, calls the engine, heartbeats its progress and returns the
// small result structs of package workflows. No DSN, password or token ever
// crosses into an argument, a result or an error message.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/engine/audit"
	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/migrate"
	"github.com/fkrollout/fkrollout/internal/engine/pgerr"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/discovery"
	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/fkrollout/fkrollout/workflows/steps"
)

// Activities holds the dependencies every activity needs.
type Activities struct {
	Config   *config.Config
	Notifier notify.Notifier
	Log      *slog.Logger
	// HeartbeatEvery is how often long activities heartbeat (default 2s).
	HeartbeatEvery time.Duration
	// SlackSigner is the public key of the worker's Slack handler, put in
	// every rollout's effective policy ("" when Slack decisions are off).
	SlackSigner string
	// Lock is the lock policy every statement on a target database runs
	// under (dbx sets it on each transaction): Config.Lock resolved once,
	// when the activities are built.
	Lock dbx.LockPolicy

	mu    sync.Mutex
	pools map[string]*pgxpool.Pool

	// afterAuditChunk, when set (tests), runs after each audit chunk's
	// heartbeat; an error ends the attempt there, as a lost worker would.
	afterAuditChunk func(audit.Checkpoint) error
}

// New builds the activities; a nil notifier logs events. A lock section
// that does not parse is refused here, before any activity runs.
func New(cfg *config.Config, n notify.Notifier, log *slog.Logger) (*Activities, error) {
	if log == nil {
		log = slog.Default()
	}
	if n == nil {
		n = notify.LogNotifier{Log: log}
	}
	lock, err := cfg.LockPolicy()
	if err != nil {
		return nil, fmt.Errorf("activities: %w", err)
	}
	return &Activities{Config: cfg, Notifier: n, Log: log, HeartbeatEvery: 2 * time.Second, Lock: lock, pools: map[string]*pgxpool.Pool{}}, nil
}

// Registerer is the part of worker.Worker (and the test environment) used here.
type Registerer interface {
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

// Register registers every activity under the name the workflow uses.
func (a *Activities) Register(r Registerer) {
	for name, fn := range a.byName() {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

func (a *Activities) byName() map[string]any {
	return map[string]any{
		rollout.ActResolvePolicy:         a.ResolvePolicy,
		rollout.ActParsePlan:             a.ParsePlan,
		rollout.ActCheckPlan:             a.CheckPlan,
		rollout.ActTakeStats:             a.TakeStats,
		rollout.ActAudit:                 a.Audit,
		rollout.ActBackup:                a.Backup,
		rollout.ActApplyConstraint:       a.ApplyConstraint,
		rollout.ActRemediate:             a.Remediate,
		rollout.ActValidateConstraint:    a.ValidateConstraint,
		rollout.ActRunBehaviourTests:     a.RunBehaviourTests,
		rollout.ActRollback:              a.Rollback,
		rollout.ActVerify:                a.Verify,
		rollout.ActRunDeployHooks:        a.RunDeployHooks,
		rollout.ActRunSmokeChecks:        a.RunSmokeChecks,
		rollout.ActCheckExpectations:     a.CheckExpectations,
		rollout.ActExportOrphans:         a.ExportOrphans,
		steps.ActNotify:                  a.Notify,
		rollout.ActPublishReport:         a.PublishReport,
		rollout.ActRemediationImpact:     a.RemediationImpact,
		rollout.ActQuarantine:            a.Quarantine,
		discovery.ActDiscoverForeignKeys: a.DiscoverForeignKeys,
		// The perf phase (perf.go).
		rollout.ActPerfRun:     a.PerfRun,
		rollout.ActPerfExplain: a.PerfExplain,
		// The interleaved comparison (perf_interleave.go).
		rollout.ActPerfInterleave: a.PerfInterleave,
	}
}

// Close closes every database pool.
func (a *Activities) Close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name, p := range a.pools {
		p.Close()
		delete(a.pools, name)
	}
}

// pool returns the environment's pool, connecting on first use. An unknown
// environment is a non-retryable configuration error.
func (a *Activities) pool(ctx context.Context, env string) (*pgxpool.Pool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.pools[env]; ok {
		return p, nil
	}
	e, err := a.Config.Environment(env)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	// Few connections, given back soon, unless the DSN sets its own
	// pool_max_conns (config.PoolConfig).
	cfg, err := config.PoolConfig(e.DSN, "fkrollout-worker")
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("environment %q: DSN does not parse", env), steps.ErrTypeConfig, nil)
	}
	p, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, a.clean(fmt.Errorf("connect to %s: %w", env, err))
	}
	a.pools[env] = p
	return p, nil
}

// dsn returns the environment's DSN for tools that need it (pg_dump).
func (a *Activities) dsn(env string) (string, error) {
	e, err := a.Config.Environment(env)
	if err != nil {
		return "", temporal.NewNonRetryableApplicationError(err.Error(), steps.ErrTypeConfig, nil)
	}
	return e.DSN, nil
}

// clean removes any configured secret from an error message and marks
// deterministic failures (a PostgreSQL error that a retry would repeat, a
// definition conflict, a constraint another rollout owns) non-retryable,
// so the workflow asks a human at once instead of retrying for a minute.
func (a *Activities) clean(err error) error {
	return a.cleanWith(context.Background(), err, pgerr.Options{})
}

// cleanWith is clean with a wider notion of deterministic (the audit treats
// its statement timeout so).
func (a *Activities) cleanWith(ctx context.Context, err error, o pgerr.Options) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	red := a.redact(msg)
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.NonRetryable() {
		if red == msg {
			return err
		}
		return temporal.NewNonRetryableApplicationError(red, ae.Type(), nil)
	}
	if f, ok := pgerr.Classify(ctx, err, o); ok {
		return temporal.NewNonRetryableApplicationError(red, steps.ErrTypeDeterministic, nil, steps.DeterministicDetail{SQLState: f.SQLState, Reason: f.Reason})
	}
	if errors.Is(err, migrate.ErrMissing) {
		return temporal.NewNonRetryableApplicationError(red, steps.ErrTypeMissing, nil)
	}
	if errors.Is(err, migrate.ErrDefinitionConflict) || errors.Is(err, migrate.ErrNotOwned) {
		return temporal.NewNonRetryableApplicationError(red, steps.ErrTypeDeterministic, nil, steps.DeterministicDetail{Reason: "definition conflict"})
	}
	if red == msg {
		return err
	}
	return errors.New(red)
}

func (a *Activities) redact(s string) string {
	if a.Config == nil {
		return s
	}
	for _, sec := range a.Config.Secrets() {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}

// heartbeater reports progress every HeartbeatEvery until stopped, so a
// long statement (VALIDATE on a big table) still proves the worker alive.
type heartbeater struct {
	mu     sync.Mutex
	detail any
	stop   chan struct{}
	done   chan struct{}
}

func (a *Activities) startHeartbeat(ctx context.Context, initial any) *heartbeater {
	h := &heartbeater{detail: initial, stop: make(chan struct{}), done: make(chan struct{})}
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 2 * time.Second
	}
	activity.RecordHeartbeat(ctx, initial)
	go func() {
		defer close(h.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				h.mu.Lock()
				d := h.detail
				h.mu.Unlock()
				activity.RecordHeartbeat(ctx, d)
			}
		}
	}()
	return h
}

func (h *heartbeater) set(detail any) {
	h.mu.Lock()
	h.detail = detail
	h.mu.Unlock()
}

func (h *heartbeater) end() {
	close(h.stop)
	<-h.done
}

// Progress is the heartbeat detail of long activities.
type Progress struct {
	Done  int    `json:"done"`
	Total int    `json:"total"`
	Item  string `json:"item,omitempty"`
	Note  string `json:"note,omitempty"`
}
