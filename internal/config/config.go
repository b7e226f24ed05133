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
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
	"github.com/fkrollout/fkrollout/internal/monitor"
	"github.com/fkrollout/fkrollout/internal/policy"
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
	// (the seeds' "regenerate Prisma client, restart service").
	DeployHooks []Hook `yaml:"deploy_hooks"`
	// SmokeChecks run after the deploy hooks (the seeds' Step 5.5).
	SmokeChecks []SmokeCheck `yaml:"smoke_checks"`
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

// SmokeCheck is one HTTP request and the status it must answer with.
type SmokeCheck struct {
	Name   string `yaml:"name"`
	Method string `yaml:"method"`
	URL    string `yaml:"url"`
	Body   string `yaml:"body"`
	// Headers are sent with the request. Their values count as secrets
	// (Authorization: Bearer ...), redacted from check details and errors;
	// only descriptive ones (Content-Type, Accept, User-Agent, ...) do not.
	Headers      map[string]string `yaml:"headers"`
	ExpectStatus int               `yaml:"expect_status"`
	Timeout      string            `yaml:"timeout"`
}

// LockConfig is the YAML form of dbx.LockPolicy.
type LockConfig struct {
	LockTimeout      string `yaml:"lock_timeout"`
	StatementTimeout string `yaml:"statement_timeout"`
	Attempts         int    `yaml:"attempts"`
	BaseBackoff      string `yaml:"base_backoff"`
	MaxBackoff       string `yaml:"max_backoff"`
}

// AuditConfig tunes the orphan audit.
type AuditConfig struct {
	SampleLimit      int    `yaml:"sample_limit"`
	StatementTimeout string `yaml:"statement_timeout"`
	Parallelism      int    `yaml:"parallelism"`
	RemediationBatch int    `yaml:"remediation_batch"`
}

// MetricsConfig is the worker's Prometheus endpoint.
type MetricsConfig struct {
	// ListenAddr, e.g. ":9464"; empty disables the endpoint.
	ListenAddr string `yaml:"listen_addr"`
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
//	FKROLLOUT_PROMETHEUS_URL  Prometheus server for the monitor
//	FKROLLOUT_SLACK_BOT_TOKEN, FKROLLOUT_SLACK_SIGNING_SECRET, FKROLLOUT_SLACK_APP_TOKEN
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
	set(&c.Prometheus.URL, "FKROLLOUT_PROMETHEUS_URL")
	set(&c.SlackSecrets.BotToken, "FKROLLOUT_SLACK_BOT_TOKEN")
	set(&c.SlackSecrets.SigningSecret, "FKROLLOUT_SLACK_SIGNING_SECRET")
	set(&c.SlackSecrets.AppToken, "FKROLLOUT_SLACK_APP_TOKEN")
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
	var errs []error
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
		for i, h := range e.DeployHooks {
			if h.Name == "" || len(h.Command) == 0 {
				errs = append(errs, fmt.Errorf("environment %q: deploy_hooks[%d] needs a name and a command", name, i))
			}
			for k := range h.Env {
				if !envName(k) {
					errs = append(errs, fmt.Errorf("environment %q: deploy hook %q: env name %q is not a variable name", name, h.Name, k))
				}
			}
			for _, k := range h.InheritEnv {
				if !envName(k) {
					errs = append(errs, fmt.Errorf("environment %q: deploy hook %q: inherit_env entry %q is not a variable name", name, h.Name, k))
				}
			}
			if h.Timeout != "" {
				if _, err := time.ParseDuration(h.Timeout); err != nil {
					errs = append(errs, fmt.Errorf("environment %q: deploy hook %q: timeout %q is not a duration", name, h.Name, h.Timeout))
				}
			}
		}
		for i, s := range e.SmokeChecks {
			if s.Name == "" || s.URL == "" {
				errs = append(errs, fmt.Errorf("environment %q: smoke_checks[%d] needs a name and a url", name, i))
			} else if _, err := url.Parse(s.URL); err != nil {
				errs = append(errs, fmt.Errorf("environment %q: smoke check %q: bad url", name, s.Name))
			}
		}
	}
	if _, err := c.LockPolicy(); err != nil {
		errs = append(errs, err)
	}
	if c.Audit.StatementTimeout != "" {
		if _, err := time.ParseDuration(c.Audit.StatementTimeout); err != nil {
			errs = append(errs, fmt.Errorf("audit.statement_timeout %q is not a duration", c.Audit.StatementTimeout))
		}
	}
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
	}
	for _, d := range durs {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil || v < 0 {
			return p, fmt.Errorf("%s %q is not a duration", d.name, d.s)
		}
		*d.dst = v
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
		for _, h := range e.DeployHooks {
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
		for _, s := range e.SmokeChecks {
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
	)
}
