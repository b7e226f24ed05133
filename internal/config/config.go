// Package config is the worker's configuration: where each environment's
// database is, where backups go, how DDL waits for locks, which deploy hooks
// and smoke checks run, and the Slack and Prometheus settings.
//
// Everything secret lives here and only here. Workflow input names an
// environment ("production"); the worker resolves it to a DSN. Nothing in
// this package is ever serialised into workflow input, activity arguments or
// results.
//
// The file is YAML, its path in FKROLLOUT_CONFIG. Environment variables
// override it (see ApplyEnv), so a container or the demo can run without a
// file at all.
package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/expect"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/policy"
	"github.com/fkrollout/fkrollout/internal/smoke"
)

// EnvVar names the variable holding the configuration file path.
const EnvVar = "FKROLLOUT_CONFIG"

// Config is the whole worker configuration.
type Config struct {
	// TaskQueue the worker polls (default "fkrollout").
	TaskQueue string `yaml:"task_queue"`
	// UIURL is the Temporal UI base URL used to build links
	// (default http://localhost:8233).
	UIURL string `yaml:"ui_url"`
	// Environments by name, as workflow input refers to them.
	Environments map[string]Environment `yaml:"environments"`
	// BackupDir is the default directory for backups (default ./backups).
	BackupDir string `yaml:"backup_dir"`
	// ReportDir receives each rollout's completion report as
	// <rollout-id>.md when it ends (default ./reports).
	ReportDir string `yaml:"report_dir"`
	// Lock bounds every DDL statement (see dbx.LockPolicy).
	Lock LockConfig `yaml:"lock"`
	// Audit tunes the orphan audit.
	Audit AuditConfig `yaml:"audit"`
	// Metrics is where the worker exposes its SDK metrics for Prometheus.
	Metrics MetricsConfig `yaml:"metrics"`
	// Worker shapes the Temporal worker: how many tasks run at once.
	Worker WorkerConfig `yaml:"worker"`
	// Tracing sends OpenTelemetry spans of workflows, Updates and
	// activities to a collector (off by default; see tracing.go).
	Tracing TracingConfig `yaml:"tracing"`
	// Prometheus is the server the production monitor queries.
	Prometheus PrometheusConfig `yaml:"prometheus"`
	// Monitor is the production monitor's metric sources (postgres,
	// prometheus, http), chosen per rollout by name in the workflow input
	// (monitor.sources); a rollout naming none watches its environment with
	// every source whose environment matches. Example:
	//
	//	monitor:
	//	  sources:
	//	    pg-production:
	//	      kind: postgres
	//	      environment: production   # uses that environment's DSN
	//	      log_path: /var/log/postgresql/postgresql-*.json
	//	      log_format: jsonlog
	//	    app:
	//	      kind: prometheus
	//	      environment: production
	//	      url: http://prometheus:9090
	//	      queries:
	//	        latency_ms: 1000 * histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))
	//	        error_rate_pct: 100 * sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))
	//
	// Each environment's smoke_checks also become an http source
	// "smoke-<environment>" (activities.NewMonitorActivities).
	Monitor monitor.Config `yaml:"monitor"`
	// Slack is decoded by the Slack integration (internal/slackbot.Config);
	// kept raw here so this package does not depend on it.
	Slack yaml.Node `yaml:"slack"`
	// SlackSecrets are environment overrides for the Slack secrets, applied
	// by the Slack integration after it decodes Slack.
	SlackSecrets SlackSecrets `yaml:"-"`
	// Perf names the perf phase's workloads (see perf.go).
	Perf PerfConfig `yaml:"perf"`
	// Policy says who may decide which gate, per environment; a rollout's
	// input may only tighten it (see internal/policy).
	Policy policy.Config `yaml:"policy"`
	// Lint sets rule severities for every plan this worker runs (strict,
	// rules: {missing-on-delete: error}); a plan's own lint section may
	// only make them stricter.
	Lint plan.LintOptions `yaml:"lint"`

	// envErrs are overrides ApplyEnv could not use, reported by Validate.
	envErrs []error
}

// Environment is one target database and what runs around it.
type Environment struct {
	// DSN of the database. Prefer DSNEnv (or FKROLLOUT_DSN_<NAME>) so the
	// file holds no password.
	DSN string `yaml:"dsn"`
	// DSNEnv names an environment variable holding the DSN.
	DSNEnv string `yaml:"dsn_env"`
	// PerfDSN, when set, is what the perf phase's workload and EXPLAINs
	// connect with instead of DSN: a role that may write the workload's
	// tables but change no schema (docs/DATABASE-ROLE.md). Index creation
	// the rollout asks for still uses DSN. PerfDSNEnv names a variable
	// holding it (not one starting FKROLLOUT_DSN_, which would declare an
	// environment).
	PerfDSN    string `yaml:"perf_dsn"`
	PerfDSNEnv string `yaml:"perf_dsn_env"`
	// MonitorDSN, when set, is what the production monitor's postgres
	// sources read through instead of DSN: a role with pg_read_all_stats
	// and CONNECT (plus SELECT on what its probes query). MonitorDSNEnv
	// names a variable holding it.
	MonitorDSN    string `yaml:"monitor_dsn"`
	MonitorDSNEnv string `yaml:"monitor_dsn_env"`
	// Schemas the stats snapshot covers (default: public).
	Schemas []string `yaml:"schemas"`
	// BackupDir overrides the global backup directory.
	BackupDir string `yaml:"backup_dir"`
	// FullBackup dumps the whole database instead of the affected tables.
	FullBackup bool `yaml:"full_backup"`
	// DeployHooks run after validation in this environment, in order
	// (for example: regenerate the Prisma client, restart the service).
	DeployHooks []Hook `yaml:"deploy_hooks"`
	// RollbackHooks run around every rollback's drop in this environment
	// (stop the application before, start it after), whatever triggered
	// the rollback.
	RollbackHooks RollbackHooks `yaml:"rollback_hooks"`
	// SmokeChecks run after the deploy hooks (HTTP checks that the
	// application still serves with the new constraints).
	SmokeChecks []SmokeCheck `yaml:"smoke_checks"`
	// SmokeCleanup runs after the smoke checks, even when one failed
	// (delete what the checks created; may use their captured values).
	SmokeCleanup []SmokeCheck `yaml:"smoke_cleanup"`
	// Expect are the figures this environment must show once its
	// constraints are validated, and the team's read-only runbook queries
	// (package expect); the plan's expect: section adds to them.
	Expect expect.Config `yaml:"expect"`
}

// RollbackHooks are the hooks around a rollback's drop, the same shape as
// deploy_hooks.
type RollbackHooks struct {
	Before []Hook `yaml:"before"`
	After  []Hook `yaml:"after"`
}

// HookSet names a list of hooks of an environment: deploy_hooks (""),
// rollback_hooks.before or rollback_hooks.after.
func (e Environment) HookSet(set string) ([]Hook, error) {
	switch set {
	case "", "deploy":
		return e.DeployHooks, nil
	case "rollback_before":
		return e.RollbackHooks.Before, nil
	case "rollback_after":
		return e.RollbackHooks.After, nil
	}
	return nil, fmt.Errorf("hook set %q: want deploy, rollback_before or rollback_after", set)
}

// allHooks are every hook of the environment with where it is configured.
func (e Environment) allHooks() (where []string, hooks []Hook) {
	for i, h := range e.DeployHooks {
		where, hooks = append(where, fmt.Sprintf("deploy_hooks[%d]", i)), append(hooks, h)
	}
	for i, h := range e.RollbackHooks.Before {
		where, hooks = append(where, fmt.Sprintf("rollback_hooks.before[%d]", i)), append(hooks, h)
	}
	for i, h := range e.RollbackHooks.After {
		where, hooks = append(where, fmt.Sprintf("rollback_hooks.after[%d]", i)), append(hooks, h)
	}
	return where, hooks
}

// PerfDSNOrMain is the DSN the perf phase runs its workload through:
// PerfDSN when configured, else DSN.
func (e Environment) PerfDSNOrMain() string {
	if e.PerfDSN != "" {
		return e.PerfDSN
	}
	return e.DSN
}

// MonitorDSNOrMain is the DSN the monitor's postgres sources read through:
// MonitorDSN when configured, else DSN.
func (e Environment) MonitorDSNOrMain() string {
	if e.MonitorDSN != "" {
		return e.MonitorDSN
	}
	return e.DSN
}

// Hook is a command run by the worker. Commands come only from this
// configuration, never from workflow input.
//
// A hook does not inherit the worker's environment (which holds every
// environment's DSN and the Slack tokens): it gets PATH, HOME, LANG and TZ
// when the worker has them, FKROLLOUT_ROLLOUT_ID and FKROLLOUT_ENVIRONMENT,
// the variables InheritEnv names and Env. Every value of Env and of the
// inherited variables counts as a secret: it is redacted from the hook's
// captured output and from anything else the worker reports.
type Hook struct {
	Name    string   `yaml:"name"`
	Command []string `yaml:"command"`
	Dir     string   `yaml:"dir"`
	// Env is set for the hook (it wins over an inherited variable).
	Env map[string]string `yaml:"env"`
	// InheritEnv names worker variables the hook gets too, e.g. a deploy
	// token: [DEPLOY_TOKEN]. Unset ones are skipped.
	InheritEnv []string `yaml:"inherit_env"`
	Timeout    string   `yaml:"timeout"`
}

// TimeoutOr returns the hook timeout, or d when unset or unparsable.
func (h Hook) TimeoutOr(d time.Duration) time.Duration {
	if v, err := time.ParseDuration(h.Timeout); err == nil && v > 0 {
		return v
	}
	return d
}

// SmokeCheck is one HTTP request and what its answer must show: status,
// body assertions, captured values for later checks, a log line (see
// package smoke).
type SmokeCheck = smoke.Check

// LockConfig is the YAML form of dbx.LockPolicy.
type LockConfig struct {
	LockTimeout      string `yaml:"lock_timeout"`
	StatementTimeout string `yaml:"statement_timeout"`
	Attempts         int    `yaml:"attempts"`
	BaseBackoff      string `yaml:"base_backoff"`
	MaxBackoff       string `yaml:"max_backoff"`
	// BlockerWait: how long a DDL statement waits, without queueing, for
	// conflicting transactions to end ("off": it never waits).
	BlockerWait string `yaml:"blocker_wait"`
	// BlockerAge: a conflicting transaction older than this is waited out.
	BlockerAge string `yaml:"blocker_age"`
	// ValidateStatementTimeout: statement_timeout of VALIDATE CONSTRAINT
	// (0 or unset: none).
	ValidateStatementTimeout string `yaml:"validate_statement_timeout"`
}

// AuditConfig tunes the orphan audit.
type AuditConfig struct {
	SampleLimit      int    `yaml:"sample_limit"`
	StatementTimeout string `yaml:"statement_timeout"`
	Parallelism      int    `yaml:"parallelism"`
	RemediationBatch int    `yaml:"remediation_batch"`
	// ChunkPages is how many heap pages of a child table one audit
	// statement reads (default audit.DefaultChunkPages, 128 MiB).
	ChunkPages int `yaml:"chunk_pages"`
	// ChunkPause is a wait between two chunks of a table, capping the
	// audit's load on the server (default none; at most MaxAuditChunkPause).
	ChunkPause string `yaml:"chunk_pause"`
	// ExportMaxRows bounds each constraint's orphan export, the CSV
	// written next to the backups before the remediation gate opens
	// (default 100000).
	ExportMaxRows int `yaml:"export_max_rows"`
	// ExportColumns are context columns shown in the export after the key
	// and FK columns, per child table ("public.invoice" or "invoice" for
	// schema public): [invoice_date, total]. Never name a secret column:
	// the people deciding read these files.
	ExportColumns map[string][]string `yaml:"export_columns"`
}

// ExportColumnsFor are the configured context columns of table t.
func (a AuditConfig) ExportColumnsFor(t plan.TableName) []string {
	for _, k := range sortedKeys(a.ExportColumns) {
		pt, err := plan.ParseTableName(k)
		if err != nil {
			continue
		}
		if pt.Schema == "" {
			pt.Schema = plan.DefaultSchema
		}
		if pt == t {
			return a.ExportColumns[k]
		}
	}
	return nil
}

// MaxAuditChunkPause bounds audit.chunk_pause: a 1 TB table is 8 000
// chunks, and a longer pause would stretch its audit over days.
const MaxAuditChunkPause = time.Minute

// MetricsConfig is the worker's Prometheus endpoint.
type MetricsConfig struct {
	// ListenAddr, e.g. ":9464"; empty disables the endpoint.
	ListenAddr string `yaml:"listen_addr"`
}

// WorkerConfig bounds what the Temporal worker runs at once. The SDK's
// defaults (1000 concurrent activities) are sized for activities that hold
// nothing; fkrollout's hold database connections from pools of a few, so the
// defaults here are sized to those pools (see DefaultMaxConcurrentActivities).
type WorkerConfig struct {
	// MaxConcurrentActivities is how many activities run at once
	// (default: DefaultMaxConcurrentActivities).
	MaxConcurrentActivities int `yaml:"max_concurrent_activities"`
	// MaxConcurrentLocalActivities bounds local activities (fkrollout
	// registers none today; default: MaxConcurrentActivities).
	MaxConcurrentLocalActivities int `yaml:"max_concurrent_local_activities"`
	// MaxConcurrentWorkflowTasks bounds workflow tasks in progress (they
	// touch no database; default 100).
	MaxConcurrentWorkflowTasks int `yaml:"max_concurrent_workflow_tasks"`
	// WorkflowTaskPollers and ActivityTaskPollers are the long polls kept
	// open on the task queue (default 2 each, the SDK's).
	WorkflowTaskPollers int `yaml:"workflow_task_pollers"`
	ActivityTaskPollers int `yaml:"activity_task_pollers"`
	// StopTimeout is how long running activities get to finish on SIGTERM
	// (default 20s); anything longer is retried by the next worker.
	StopTimeout string `yaml:"stop_timeout"`
}

// Worker defaults that do not depend on the environments.
const (
	// DefaultPoolMaxConns is each pool's size unless its DSN says
	// pool_max_conns.
	DefaultPoolMaxConns = 4
	// unpooledActivitySlots are the activity slots beyond the pools' sizes:
	// notifications, deploy hooks and smoke checks hold no connection.
	unpooledActivitySlots       = 4
	defaultMaxConcurrentWFTasks = 100
	defaultPollers              = 2
	defaultStopTimeout          = 20 * time.Second
)

// DefaultMaxConcurrentActivities is the activity limit when
// worker.max_concurrent_activities is unset: the sum of the environments'
// main pool sizes (pool_max_conns of each DSN, DefaultPoolMaxConns when it
// names none) plus 4 slots for activities that hold no connection. Every
// pool can then be kept busy, and no more activities wait on a pool than it
// has connections for, instead of a thousand queueing for four.
func (c *Config) DefaultMaxConcurrentActivities() int {
	n := unpooledActivitySlots
	for _, name := range c.EnvironmentNames() {
		n += PoolMaxConns(c.Environments[name].DSN)
	}
	return n
}

// StopTimeoutOr returns worker.stop_timeout (validated at load), or d when
// unset.
func (w WorkerConfig) StopTimeoutOr(d time.Duration) time.Duration {
	if v, err := time.ParseDuration(w.StopTimeout); err == nil && v > 0 {
		return v
	}
	return d
}

// PrometheusConfig is the server the monitor queries: the default url of
// every prometheus monitor source.
type PrometheusConfig struct {
	URL string `yaml:"url"`
}

// SlackSecrets come from FKROLLOUT_SLACK_* variables.
type SlackSecrets struct {
	BotToken      string
	SigningSecret string
	AppToken      string
}

// Load reads the file named by FKROLLOUT_CONFIG (when set), applies
// environment overrides and validates the result.
func Load() (*Config, error) {
	return LoadFrom(os.Getenv(EnvVar), os.LookupEnv)
}

// LoadFrom reads path (may be empty: no file) and applies overrides from
// lookup, which is os.LookupEnv outside tests.
func LoadFrom(path string, lookup func(string) (string, bool)) (*Config, error) {
	c := &Config{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		// An empty file is an empty configuration.
		if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
	}
	c.ApplyEnv(lookup)
	c.defaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyEnv applies overrides:
//
//	FKROLLOUT_DSN_<ENV>       DSN of environment <env> (created when missing)
//	FKROLLOUT_BACKUP_DIR      backup directory
//	FKROLLOUT_TASK_QUEUE      task queue
//	FKROLLOUT_UI_URL          Temporal UI base URL
//	FKROLLOUT_METRICS_ADDR    Prometheus listen address for SDK metrics
//	FKROLLOUT_MAX_CONCURRENT_ACTIVITIES  worker.max_concurrent_activities
//	FKROLLOUT_PROMETHEUS_URL  Prometheus server for the monitor
//	FKROLLOUT_SLACK_BOT_TOKEN, FKROLLOUT_SLACK_SIGNING_SECRET, FKROLLOUT_SLACK_APP_TOKEN
//	OTEL_EXPORTER_OTLP_ENDPOINT  tracing.endpoint, when the file sets none
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	get := func(k string) string { v, _ := lookup(k); return v }
	if c.Environments == nil {
		c.Environments = map[string]Environment{}
	}
	for _, kv := range environ(lookup) {
		name, ok := strings.CutPrefix(kv, "FKROLLOUT_DSN_")
		if !ok || name == "" {
			continue
		}
		env := strings.ToLower(name)
		e := c.Environments[env]
		e.DSN = get(kv)
		c.Environments[env] = e
	}
	for name, e := range c.Environments {
		if e.DSNEnv != "" {
			if v := get(e.DSNEnv); v != "" {
				e.DSN = v
			}
		}
		if e.PerfDSNEnv != "" {
			if v := get(e.PerfDSNEnv); v != "" {
				e.PerfDSN = v
			}
		}
		if e.MonitorDSNEnv != "" {
			if v := get(e.MonitorDSNEnv); v != "" {
				e.MonitorDSN = v
			}
		}
		c.Environments[name] = e
	}
	set := func(dst *string, k string) {
		if v := get(k); v != "" {
			*dst = v
		}
	}
	set(&c.BackupDir, "FKROLLOUT_BACKUP_DIR")
	set(&c.ReportDir, "FKROLLOUT_REPORT_DIR")
	set(&c.TaskQueue, "FKROLLOUT_TASK_QUEUE")
	set(&c.UIURL, "FKROLLOUT_UI_URL")
	set(&c.Metrics.ListenAddr, "FKROLLOUT_METRICS_ADDR")
	if v := get("FKROLLOUT_MAX_CONCURRENT_ACTIVITIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.envErrs = append(c.envErrs, fmt.Errorf("FKROLLOUT_MAX_CONCURRENT_ACTIVITIES: %q is not a number", v))
		}
		c.Worker.MaxConcurrentActivities = n
	}
	set(&c.Prometheus.URL, "FKROLLOUT_PROMETHEUS_URL")
	set(&c.SlackSecrets.BotToken, "FKROLLOUT_SLACK_BOT_TOKEN")
	set(&c.SlackSecrets.SigningSecret, "FKROLLOUT_SLACK_SIGNING_SECRET")
	set(&c.SlackSecrets.AppToken, "FKROLLOUT_SLACK_APP_TOKEN")
	c.Tracing.applyEnv(get)
}

// environ lists the FKROLLOUT_DSN_* variable names. With os.LookupEnv the
// process environment is scanned; a test lookup exposes its names through
// the special key "\x00names" (newline separated).
func environ(lookup func(string) (string, bool)) []string {
	if names, ok := lookup("\x00names"); ok {
		return strings.Split(names, "\n")
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "FKROLLOUT_DSN_") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Config) defaults() {
	if c.TaskQueue == "" {
		c.TaskQueue = "fkrollout"
	}
	if c.UIURL == "" {
		c.UIURL = "http://localhost:8233"
	}
	if c.BackupDir == "" {
		c.BackupDir = "backups"
	}
	if c.ReportDir == "" {
		c.ReportDir = "reports"
	}
	if c.Audit.SampleLimit == 0 {
		c.Audit.SampleLimit = 5
	}
	if c.Audit.Parallelism == 0 {
		c.Audit.Parallelism = 2
	}
	if c.Audit.RemediationBatch == 0 {
		c.Audit.RemediationBatch = 1000
	}
	w := &c.Worker
	if w.MaxConcurrentActivities == 0 {
		w.MaxConcurrentActivities = c.DefaultMaxConcurrentActivities()
	}
	if w.MaxConcurrentLocalActivities == 0 {
		w.MaxConcurrentLocalActivities = w.MaxConcurrentActivities
	}
	if w.MaxConcurrentWorkflowTasks == 0 {
		w.MaxConcurrentWorkflowTasks = defaultMaxConcurrentWFTasks
	}
	if w.WorkflowTaskPollers == 0 {
		w.WorkflowTaskPollers = defaultPollers
	}
	if w.ActivityTaskPollers == 0 {
		w.ActivityTaskPollers = defaultPollers
	}
	if w.StopTimeout == "" {
		w.StopTimeout = defaultStopTimeout.String()
	}
	c.Tracing.defaults()
	// prometheus.url (FKROLLOUT_PROMETHEUS_URL) is the server of every
	// prometheus monitor source that names none.
	for name, sc := range c.Monitor.Sources {
		if sc.Kind == monitor.KindPrometheus && sc.URL == "" && c.Prometheus.URL != "" {
			sc.URL = c.Prometheus.URL
			c.Monitor.Sources[name] = sc
		}
	}
}

// Validate names every problem at once.
func (c *Config) Validate() error {
	errs := append([]error(nil), c.envErrs...)
	if err := c.Lint.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("lint: %w", err))
	}
	for _, name := range c.EnvironmentNames() {
		e := c.Environments[name]
		if e.DSN == "" {
			errs = append(errs, fmt.Errorf("environment %q: no DSN (set dsn, dsn_env or FKROLLOUT_DSN_%s)", name, strings.ToUpper(name)))
		} else if _, err := pgx.ParseConfig(e.DSN); err != nil {
			// The parse error can echo the DSN; do not include it.
			errs = append(errs, fmt.Errorf("environment %q: DSN does not parse", name))
		}
		for _, d := range []struct{ field, dsn, envVar string }{
			{"perf_dsn", e.PerfDSN, e.PerfDSNEnv},
			{"monitor_dsn", e.MonitorDSN, e.MonitorDSNEnv},
		} {
			switch {
			case d.dsn == "" && d.envVar != "":
				// Falling back to the main DSN would quietly run with
				// more privilege than configured.
				errs = append(errs, fmt.Errorf("environment %q: %s_env names %s, which is unset or empty", name, d.field, d.envVar))
			case d.dsn != "":
				if _, err := pgx.ParseConfig(d.dsn); err != nil {
					errs = append(errs, fmt.Errorf("environment %q: %s does not parse", name, d.field))
				}
			}
		}
		where, hooks := e.allHooks()
		for i, h := range hooks {
			if h.Name == "" || len(h.Command) == 0 {
				errs = append(errs, fmt.Errorf("environment %q: %s needs a name and a command", name, where[i]))
			}
			for k := range h.Env {
				if !envName(k) {
					errs = append(errs, fmt.Errorf("environment %q: hook %q (%s): env name %q is not a variable name", name, h.Name, where[i], k))
				}
			}
			for _, k := range h.InheritEnv {
				if !envName(k) {
					errs = append(errs, fmt.Errorf("environment %q: hook %q (%s): inherit_env entry %q is not a variable name", name, h.Name, where[i], k))
				}
			}
			errs = appendErr(errs, duration(fmt.Sprintf("environments.%s.%s.timeout", name, where[i]), h.Timeout))
		}
		if err := smoke.Validate("environments."+name, e.SmokeChecks, e.SmokeCleanup); err != nil {
			errs = append(errs, err)
		}
		if err := e.Expect.Validate("environments." + name + ".expect"); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := c.LockPolicy(); err != nil {
		errs = append(errs, err)
	}
	errs = appendErr(errs, duration("audit.statement_timeout", c.Audit.StatementTimeout))
	errs = appendErr(errs, duration("audit.chunk_pause", c.Audit.ChunkPause))
	if d := c.AuditChunkPause(); d > MaxAuditChunkPause {
		errs = append(errs, fmt.Errorf("audit.chunk_pause: %s is longer than %s", c.Audit.ChunkPause, MaxAuditChunkPause))
	}
	errs = append(errs, c.validateScalars()...)
	if err := c.Monitor.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	srcs := make([]string, 0, len(c.Monitor.Sources))
	for src := range c.Monitor.Sources {
		srcs = append(srcs, src)
	}
	sort.Strings(srcs)
	for _, src := range srcs {
		// A postgres source reads through its environment's pool: the DSN
		// stays in the environment section, never in the source.
		if sc := c.Monitor.Sources[src]; sc.Kind == monitor.KindPostgres && sc.Environment != "" {
			if _, ok := c.Environments[sc.Environment]; !ok {
				errs = append(errs, fmt.Errorf("monitor source %q: environment %q is not configured (configured: %s)", src, sc.Environment, strings.Join(c.EnvironmentNames(), ", ")))
			}
		}
	}
	return errors.Join(errs...)
}

// validateScalars checks the single-valued fields outside the environments:
// addresses, URLs, limits and the worker's durations.
func (c *Config) validateScalars() []error {
	var errs []error
	// Zero values are unset (defaults fills them in), so a Config built in
	// code validates too.
	if c.TaskQueue != "" && strings.TrimSpace(c.TaskQueue) == "" {
		errs = append(errs, errors.New("task_queue: blank"))
	}
	if c.UIURL != "" {
		errs = appendErr(errs, httpURL("ui_url", c.UIURL))
	}
	if c.Prometheus.URL != "" {
		errs = appendErr(errs, httpURL("prometheus.url", c.Prometheus.URL))
	}
	if a := c.Metrics.ListenAddr; a != "" {
		if _, port, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("metrics.listen_addr: %w (want host:port or :port)", err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("metrics.listen_addr: port %q is not a port number", port))
		}
	}
	for _, f := range []struct {
		path string
		v    int
	}{
		{"worker.max_concurrent_activities", c.Worker.MaxConcurrentActivities},
		{"worker.max_concurrent_local_activities", c.Worker.MaxConcurrentLocalActivities},
		{"worker.max_concurrent_workflow_tasks", c.Worker.MaxConcurrentWorkflowTasks},
		{"worker.workflow_task_pollers", c.Worker.WorkflowTaskPollers},
		{"worker.activity_task_pollers", c.Worker.ActivityTaskPollers},
		{"audit.parallelism", c.Audit.Parallelism},
		{"audit.remediation_batch", c.Audit.RemediationBatch},
		{"audit.chunk_pages", c.Audit.ChunkPages},
		{"audit.export_max_rows", c.Audit.ExportMaxRows},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %d is negative", f.path, f.v))
		}
	}
	if c.Worker.ActivityTaskPollers > c.Worker.MaxConcurrentActivities && c.Worker.MaxConcurrentActivities > 0 {
		errs = append(errs, fmt.Errorf("worker.activity_task_pollers: %d pollers for %d activity slots would hold tasks no slot can run",
			c.Worker.ActivityTaskPollers, c.Worker.MaxConcurrentActivities))
	}
	errs = appendErr(errs, duration("worker.stop_timeout", c.Worker.StopTimeout))
	for _, k := range sortedKeys(c.Audit.ExportColumns) {
		if _, err := plan.ParseTableName(k); err != nil {
			errs = append(errs, fmt.Errorf("audit.export_columns: key %q is not a table name: %v", k, err))
		}
		for i, col := range c.Audit.ExportColumns[k] {
			if strings.TrimSpace(col) == "" {
				errs = append(errs, fmt.Errorf("audit.export_columns.%s[%d]: empty column name", k, i))
			}
		}
	}
	errs = append(errs, c.Tracing.validate()...)
	return errs
}

// duration checks one duration field named by its path: "" is unset;
// anything else must parse and not be negative. A typo must not silently
// become a default.
func duration(path, s string) error {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if d < 0 {
		return fmt.Errorf("%s: %q is negative", path, s)
	}
	return nil
}

// httpURL checks an absolute http(s) URL field named by its path.
func httpURL(path, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: %q is not an absolute http(s) URL", path, s)
	}
	return nil
}

func appendErr(errs []error, err error) []error {
	if err != nil {
		return append(errs, err)
	}
	return errs
}

// EnvironmentNames returns the configured environment names, sorted.
func (c *Config) EnvironmentNames() []string {
	names := make([]string, 0, len(c.Environments))
	for n := range c.Environments {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Environment returns the named environment or an error naming the known ones.
func (c *Config) Environment(name string) (Environment, error) {
	e, ok := c.Environments[name]
	if !ok {
		return Environment{}, fmt.Errorf("environment %q is not configured on this worker (configured: %s)", name, strings.Join(c.EnvironmentNames(), ", "))
	}
	return e, nil
}

// BackupDirFor returns the backup directory of an environment.
func (c *Config) BackupDirFor(name string) string {
	if e, ok := c.Environments[name]; ok && e.BackupDir != "" {
		return e.BackupDir
	}
	return c.BackupDir
}

// LockPolicy converts the lock section into a dbx.LockPolicy (defaults for
// unset fields).
func (c *Config) LockPolicy() (dbx.LockPolicy, error) {
	p := dbx.DefaultLockPolicy()
	durs := []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"lock.lock_timeout", c.Lock.LockTimeout, &p.LockTimeout},
		{"lock.statement_timeout", c.Lock.StatementTimeout, &p.StatementTimeout},
		{"lock.base_backoff", c.Lock.BaseBackoff, &p.BaseBackoff},
		{"lock.max_backoff", c.Lock.MaxBackoff, &p.MaxBackoff},
		{"lock.blocker_age", c.Lock.BlockerAge, &p.BlockerAge},
		{"lock.validate_statement_timeout", c.Lock.ValidateStatementTimeout, &p.ValidateStatementTimeout},
	}
	for _, d := range durs {
		if d.s == "" {
			continue
		}
		if err := duration(d.name, d.s); err != nil {
			return p, err
		}
		*d.dst, _ = time.ParseDuration(d.s)
	}
	if c.Lock.Attempts < 0 {
		return p, fmt.Errorf("lock.attempts: %d is negative", c.Lock.Attempts)
	}
	switch w := c.Lock.BlockerWait; w {
	case "":
	case "off":
		p.BlockerWait = -1
	default:
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("lock.blocker_wait: %q: want a positive duration (2m) or off", w)
		}
		p.BlockerWait = d
	}
	if c.Lock.BlockerAge != "" && p.BlockerAge <= 0 {
		return p, fmt.Errorf("lock.blocker_age: %q: want a positive duration (20ms)", c.Lock.BlockerAge)
	}
	if v := p.ValidateStatementTimeout; v > 0 && v < time.Second {
		return p, fmt.Errorf("lock.validate_statement_timeout: %s is under a second (0 means none; VALIDATE of a big table takes minutes to hours)", v)
	}
	if c.Lock.Attempts > 0 {
		p.Attempts = c.Lock.Attempts
	}
	return p, nil
}

// AuditStatementTimeout returns the audit statement timeout (0 = none).
func (c *Config) AuditStatementTimeout() time.Duration {
	d, _ := time.ParseDuration(c.Audit.StatementTimeout)
	return d
}

// AuditChunkPause returns the pause between audit chunks (0 = none).
func (c *Config) AuditChunkPause() time.Duration {
	d, _ := time.ParseDuration(c.Audit.ChunkPause)
	return d
}

// Secrets returns every secret string in the configuration (DSNs, their
// passwords, tokens, deploy hooks' env and inherited values, smoke-check
// header values), for redaction and for tests that scan histories and logs
// for leaks.
func (c *Config) Secrets() []string {
	var out []string
	dsn := func(d string) {
		if d == "" {
			return
		}
		out = append(out, d)
		if pc, err := pgx.ParseConfig(d); err == nil && pc.Password != "" {
			out = append(out, pc.Password)
		}
	}
	for _, n := range c.EnvironmentNames() {
		e := c.Environments[n]
		dsn(e.DSN)
		dsn(e.PerfDSN)
		dsn(e.MonitorDSN)
		_, hooks := e.allHooks()
		for _, h := range hooks {
			for _, v := range h.Env {
				if v != "" {
					out = append(out, v)
				}
			}
			// What a hook inherits is read from the worker's own
			// environment when it runs, so that is where it is looked up.
			for _, k := range h.InheritEnv {
				if v, ok := os.LookupEnv(k); ok && v != "" {
					out = append(out, v)
				}
			}
		}
		for _, s := range slices.Concat(e.SmokeChecks, e.SmokeCleanup) {
			for k, v := range s.Headers {
				if !plainHeaders[strings.ToLower(k)] {
					out = append(out, headerSecrets(v)...)
				}
			}
		}
	}
	for _, s := range []string{c.SlackSecrets.BotToken, c.SlackSecrets.SigningSecret, c.SlackSecrets.AppToken} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// envName: a portable environment variable name (letters, digits, '_',
// not starting with a digit).
func envName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, r := range k {
		if !(r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

// plainHeaders describe the request, never authenticate it: their values
// ("application/json") are not secrets, and redacting them would mangle
// every message that mentions them. Any other header counts as a secret.
var plainHeaders = map[string]bool{
	"accept": true, "accept-encoding": true, "accept-language": true, "cache-control": true,
	"content-type": true, "content-length": true, "connection": true, "host": true, "user-agent": true,
}

// headerSecrets is a header value and, for "<scheme> <credential>" values
// (Bearer, Basic, Token), the credential alone, which a service may echo
// without its scheme.
func headerSecrets(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	out := []string{v}
	if _, cred, ok := strings.Cut(v, " "); ok {
		if cred = strings.TrimSpace(cred); cred != "" {
			out = append(out, cred)
		}
	}
	return out
}

// LogValue keeps DSNs and tokens out of logs.
func (c *Config) LogValue() slog.Value {
	envs := make([]string, 0, len(c.Environments))
	for _, n := range c.EnvironmentNames() {
		e := c.Environments[n]
		envs = append(envs, n+"(hooks="+strconv.Itoa(len(e.DeployHooks))+",smoke="+strconv.Itoa(len(e.SmokeChecks))+")")
	}
	return slog.GroupValue(
		slog.String("task_queue", c.TaskQueue),
		slog.String("ui_url", c.UIURL),
		slog.Any("environments", envs),
		slog.String("backup_dir", c.BackupDir),
		slog.String("report_dir", c.ReportDir),
		slog.String("metrics", c.Metrics.ListenAddr),
		slog.String("tracing", c.Tracing.summary()),
	)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
