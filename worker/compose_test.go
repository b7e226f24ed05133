package main

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.yaml.in/yaml/v3"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// composeService is the part of a docker-compose.yml service the test reads.
// depends_on and environment must use the map forms.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       string            `yaml:"build"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Ports       []string          `yaml:"ports"`
	Profiles    []string          `yaml:"profiles"`
	Restart     string            `yaml:"restart"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// TestDockerComposeIsConsistent checks docker-compose.yml against the code
// and images it runs (CI has no Docker engine, so the stack itself is not
// started here): a Temporal server and admin-tools of one pinned tag and no
// auto-setup or dev-server image; a health check behind every service_healthy
// and a one-shot behind every service_completed_successfully; the schema and
// namespace one-shots doing what the server needs (both schemas, the
// search attributes rollout.SearchAttributeNames() lists, Workflow Updates
// on); a worker environment that the worker's own loaders (envconfig,
// internal/config) accept with both demo environments on the postgres
// service; a worker that connects as the ordinary role sql/role.sql sets up
// (db-role one-shot) over tables the seed gives an ordinary owner, never as
// the superuser; Prometheus scraping the port the worker serves metrics on;
// every file the stack mounts, runs or builds from present. When a Compose
// CLI is installed it must accept the file too.
func TestDockerComposeIsConsistent(t *testing.T) {
	raw := mustRead(t, "../docker-compose.yml")
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(raw), &compose))
	svc := compose.Services
	for _, s := range []string{"postgres", "seed", "db-role", "temporal-postgresql", "temporal-schema", "temporal", "temporal-setup", "temporal-ui", "worker", "fkrollout", "prometheus"} {
		require.Contains(t, svc, s)
	}

	t.Run("images", func(t *testing.T) {
		// Outside comments, anchors included.
		code := regexp.MustCompile(`(?m)(^|\s)#.*$`).ReplaceAllString(raw, "")
		assert.False(t, strings.Contains(code, "auto-setup"), "temporalio/auto-setup is deprecated: server + admin-tools one-shots")
		assert.False(t, strings.Contains(code, "start-dev"), "the server is temporalio/server, not the CLI's dev server")
		assert.False(t, strings.Contains(code, "temporalio/temporal:"), "the server is temporalio/server, not the CLI image")
		for name, s := range svc {
			if s.Build != "" {
				continue // fkrollout's own image, built from the Dockerfile
			}
			repo, tag, ok := strings.Cut(s.Image, ":")
			assert.True(t, ok && tag != "" && tag != "latest", "%s: image %q must pin a tag", name, s.Image)
			if strings.HasPrefix(repo, "temporalio/") {
				assert.Regexp(t, `^\d+\.\d+\.\d+$`, tag, "%s: pin a concrete Temporal release", name)
			}
		}
		server := imageTag(t, svc["temporal"].Image, "temporalio/server")
		for _, name := range []string{"temporal-schema", "temporal-setup"} {
			assert.Equal(t, server, imageTag(t, svc[name].Image, "temporalio/admin-tools"), "%s: admin-tools must match the server tag", name)
		}
		imageTag(t, svc["temporal-ui"].Image, "temporalio/ui")

		// pg_dump must be at least the application server's major version.
		pg := imageTag(t, svc["postgres"].Image, "postgres")
		pgClient := regexp.MustCompile(`postgresql-client-(\d+)`).FindStringSubmatch(mustRead(t, "../Dockerfile"))
		require.Len(t, pgClient, 2, "the Dockerfile installs a versioned postgresql-client")
		assert.Equal(t, strings.Split(pg, ".")[0], pgClient[1], "pg_dump in the image matches the postgres service's major version")
	})

	t.Run("start order", func(t *testing.T) {
		for name, s := range svc {
			for dep, d := range s.DependsOn {
				target, ok := svc[dep]
				if !assert.True(t, ok, "%s depends on unknown service %s", name, dep) {
					continue
				}
				switch d.Condition {
				case "service_healthy":
					assert.True(t, target.Healthcheck != nil && len(target.Healthcheck.Test) > 0, "%s waits for %s to be healthy: %s needs a healthcheck", name, dep, dep)
				case "service_completed_successfully":
					assert.Contains(t, []string{"", "no"}, target.Restart, "%s waits for %s to complete: %s must be a one-shot", name, dep, dep)
				default:
					t.Errorf("%s -> %s: condition %q; use service_healthy or service_completed_successfully", name, dep, d.Condition)
				}
			}
		}
		deps := func(name string) map[string]string {
			m := map[string]string{}
			for dep, d := range svc[name].DependsOn {
				m[dep] = d.Condition
			}
			return m
		}
		assert.Equal(t, "service_healthy", deps("temporal-schema")["temporal-postgresql"])
		assert.Equal(t, "service_completed_successfully", deps("temporal")["temporal-schema"])
		assert.Equal(t, "service_healthy", deps("temporal-setup")["temporal"])
		assert.Equal(t, map[string]string{
			"db-role":        "service_completed_successfully",
			"temporal":       "service_healthy",
			"temporal-setup": "service_completed_successfully",
		}, deps("worker"))
		assert.Equal(t, map[string]string{"seed": "service_completed_successfully"}, deps("db-role"), "the role is granted on the databases the seed creates")
		assert.Equal(t, "service_completed_successfully", deps("fkrollout")["temporal-setup"])
		assert.Contains(t, deps("prometheus"), "worker")
		assert.Equal(t, []string{"cli"}, svc["fkrollout"].Profiles, "the CLI runs only with docker compose run")
		assert.Equal(t, []string{"fkrollout"}, svc["fkrollout"].Entrypoint)
	})

	t.Run("temporal persistence", func(t *testing.T) {
		server, schema, db := svc["temporal"].Environment, svc["temporal-schema"].Environment, svc["temporal-postgresql"].Environment
		assert.Equal(t, "postgres12", server["DB"])
		assert.Contains(t, svc, server["POSTGRES_SEEDS"], "POSTGRES_SEEDS names the Temporal PostgreSQL service")
		assert.Equal(t, "temporal-postgresql", server["POSTGRES_SEEDS"], "Temporal has a PostgreSQL of its own")
		assert.Equal(t, db["POSTGRES_USER"], server["POSTGRES_USER"])
		assert.Equal(t, db["POSTGRES_PASSWORD"], server["POSTGRES_PWD"])
		assert.Equal(t, "0.0.0.0", server["BIND_ON_IP"], "the frontend must listen beyond the container's loopback")
		for _, k := range []string{"DB", "DB_PORT", "POSTGRES_SEEDS", "POSTGRES_USER"} {
			assert.Equal(t, server[k], schema[k], "temporal-schema sets up the database the server uses (%s)", k)
		}
		assert.Equal(t, server["POSTGRES_PWD"], schema["SQL_PASSWORD"], "temporal-sql-tool reads the password from SQL_PASSWORD")

		script := mustRead(t, mountedFile(t, svc["temporal-schema"], lastArg(svc["temporal-schema"].Entrypoint)))
		assert.Contains(t, script, "setup-schema -v 0.0")
		for _, dir := range []string{"/etc/temporal/schema/postgresql/v12", `"${SCHEMA_DIR}/temporal/versioned"`, `"${SCHEMA_DIR}/visibility/versioned"`, "setup temporal ", "setup temporal_visibility "} {
			assert.Contains(t, script, dir)
		}

		dyn := server["DYNAMIC_CONFIG_FILE_PATH"]
		require.NotEmpty(t, dyn)
		var dc map[string][]struct {
			Value any `yaml:"value"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(mustRead(t, mountedFile(t, svc["temporal"], dyn))), &dc))
		require.NotEmpty(t, dc["frontend.enableUpdateWorkflowExecution"], "the gates are Workflow Updates")
		assert.Equal(t, true, dc["frontend.enableUpdateWorkflowExecution"][0].Value)
	})

	worker := svc["worker"]
	workerEnv := worker.Environment
	temporalOpts, err := envconfig.LoadClientOptions(envconfig.LoadClientOptionsRequest{DisableFile: true, EnvLookup: mapEnv(workerEnv)})
	require.NoError(t, err, "the worker's TEMPORAL_* environment, read as worker/main.go reads it")

	t.Run("namespace and search attributes", func(t *testing.T) {
		setup := svc["temporal-setup"]
		assert.Equal(t, temporalOpts.HostPort, setup.Environment["TEMPORAL_ADDRESS"], "temporal-setup prepares the server the worker uses")
		workerNS := temporalOpts.Namespace
		if workerNS == "" {
			workerNS = client.DefaultNamespace
		}
		assert.Equal(t, workerNS, setup.Environment["TEMPORAL_NAMESPACE"], "temporal-setup registers the worker's namespace")
		assert.Equal(t, rollout.SearchAttributeNames(), strings.Fields(setup.Environment["FKROLLOUT_SEARCH_ATTRIBUTES"]))
		script := mustRead(t, mountedFile(t, setup, lastArg(setup.Entrypoint)))
		for _, s := range []string{"${FKROLLOUT_SEARCH_ATTRIBUTES}", "search-attribute create", "--type Keyword", "operator namespace create", "operator cluster health"} {
			assert.Contains(t, script, s)
		}
	})

	t.Run("worker", func(t *testing.T) {
		assert.Equal(t, ".", worker.Build)
		assert.Equal(t, "temporal:7233", temporalOpts.HostPort, "merged from the shared anchor")
		assert.Contains(t, svc, strings.Split(temporalOpts.HostPort, ":")[0])

		// Every variable set is one the worker reads: TEMPORAL_* through
		// envconfig, FKROLLOUT_* through internal/config or worker/main.go.
		known := map[string]bool{}
		for _, src := range []string{"../internal/config/config.go", "main.go"} {
			for _, m := range regexp.MustCompile(`"(FKROLLOUT_[A-Z0-9_]*[A-Z0-9])"`).FindAllStringSubmatch(mustRead(t, src), -1) {
				known[m[1]] = true
			}
		}
		known[config.EnvVar] = true
		for k := range workerEnv {
			switch {
			case strings.HasPrefix(k, "FKROLLOUT_DSN_"), strings.HasPrefix(k, "TEMPORAL_"):
			default:
				assert.True(t, known[k], "worker variable %s is read by neither internal/config nor worker/main.go", k)
			}
		}

		lookup := func(k string) (string, bool) {
			if k == "\x00names" {
				var names []string
				for n := range workerEnv {
					if strings.HasPrefix(n, "FKROLLOUT_DSN_") {
						names = append(names, n)
					}
				}
				sort.Strings(names)
				return strings.Join(names, "\n"), true
			}
			v, ok := workerEnv[k]
			return v, ok
		}
		cfg, err := config.LoadFrom("", lookup)
		require.NoError(t, err)
		assert.Equal(t, []string{"production", "staging"}, cfg.EnvironmentNames())
		seedAdmin, err := url.Parse(lastArg(svc["seed"].Entrypoint))
		require.NoError(t, err)
		assert.Equal(t, "demodb", svc["seed"].Entrypoint[0])
		assert.Contains(t, svc, seedAdmin.Hostname(), "the seed connects to a service of the stack")
		for _, n := range cfg.EnvironmentNames() {
			e, _ := cfg.Environment(n)
			u, err := url.Parse(e.DSN)
			require.NoError(t, err)
			assert.Equal(t, seedAdmin.Host, u.Host, "the worker's %s DSN points at the server the seed fills", n)
			assert.Equal(t, "/fkr_demo_"+n, u.Path, "the worker's %s DSN names the database the seed creates", n)
		}

		// The worker's role: not the superuser the one-shots use, set up
		// by sql/role.sql on every database the worker connects to, a
		// member of the ordinary role that owns the seed's tables.
		roleScript := svc["db-role"]
		assert.Equal(t, ".", roleScript.Build, "db-role runs the role.sql baked into the fkrollout image")
		script := strings.Join(roleScript.Entrypoint, " ")
		assert.Contains(t, script, "-f /app/sql/role.sql")
		assert.Contains(t, mustRead(t, "../Dockerfile"), "COPY sql/ /app/sql/")
		_, err = os.Stat("../sql/role.sql")
		require.NoError(t, err)
		psqlVar := func(name string) string {
			m := regexp.MustCompile(`-v ` + name + `=(\S+)`).FindStringSubmatch(script)
			require.Len(t, m, 2, "db-role sets psql variable %s", name)
			return m[1]
		}
		seedOwner := ""
		for i, a := range svc["seed"].Entrypoint {
			if a == "-owner" && i+1 < len(svc["seed"].Entrypoint) {
				seedOwner = svc["seed"].Entrypoint[i+1]
			}
		}
		require.NotEmpty(t, seedOwner, "the seed gives the tables an ordinary owner (demodb -owner)")
		assert.NotEqual(t, seedAdmin.User.Username(), seedOwner)
		assert.Equal(t, seedOwner, psqlVar("table_owner"), "the worker's role joins the role owning the seed's tables")
		workerRole := psqlVar("role")
		for _, n := range cfg.EnvironmentNames() {
			e, _ := cfg.Environment(n)
			u, err := url.Parse(e.DSN)
			require.NoError(t, err)
			assert.Equal(t, workerRole, u.User.Username(), "the worker's %s DSN uses the role db-role creates", n)
			assert.NotEqual(t, seedAdmin.User.Username(), u.User.Username(), "the worker is not the superuser")
			assert.Contains(t, script, "fkr_demo_"+n, "db-role grants on the %s database", n)
		}

		// Links the worker posts open the UI service.
		uiPort := hostPort(t, svc["temporal-ui"], "8080")
		assert.Equal(t, "http://localhost:"+uiPort, cfg.UIURL)
		assert.Equal(t, cfg.UIURL, svc["temporal-ui"].Environment["TEMPORAL_CORS_ORIGINS"])
		assert.Equal(t, temporalOpts.HostPort, svc["temporal-ui"].Environment["TEMPORAL_ADDRESS"])

		// Metrics: served, published, health-checked and scraped on one port.
		_, port, ok := strings.Cut(cfg.Metrics.ListenAddr, ":")
		require.True(t, ok && port != "", "the worker serves metrics (FKROLLOUT_METRICS_ADDR)")
		assert.Equal(t, port, hostPort(t, worker, port))
		require.NotNil(t, worker.Healthcheck)
		// The health check asks for readiness (Temporal and the databases),
		// through the worker binary itself.
		assert.Equal(t, []string{"CMD", "worker", "-probe", "http://127.0.0.1:" + port + "/readyz"}, worker.Healthcheck.Test)
		var prom struct {
			ScrapeConfigs []struct {
				StaticConfigs []struct {
					Targets []string `yaml:"targets"`
				} `yaml:"static_configs"`
			} `yaml:"scrape_configs"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(mustRead(t, mountedFile(t, svc["prometheus"], "/etc/prometheus/prometheus.yml"))), &prom))
		var targets []string
		for _, sc := range prom.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				targets = append(targets, st.Targets...)
			}
		}
		assert.Contains(t, targets, "worker:"+port)
		promURL, err := url.Parse(cfg.Prometheus.URL)
		require.NoError(t, err)
		assert.Contains(t, svc, promURL.Hostname(), "the monitor queries the stack's Prometheus")
	})

	t.Run("files", func(t *testing.T) {
		for _, f := range []string{"../Dockerfile", "../.dockerignore"} {
			_, err := os.Stat(f)
			assert.NoError(t, err, f)
		}
		for name, s := range svc {
			for _, v := range s.Volumes {
				if host, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(host, "./") {
					_, err := os.Stat(filepath.Join("..", host))
					assert.NoError(t, err, "%s mounts %s", name, host)
				}
			}
		}
		dockerfile := mustRead(t, "../Dockerfile")
		for _, pkg := range []string{"./worker", "./starter", "./scripts/demodb"} {
			assert.Contains(t, dockerfile, pkg)
		}
		assert.Contains(t, dockerfile, "-o /out/fkrollout ./starter", "the image's CLI is fkrollout, the compose entrypoint")
		user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(dockerfile, -1)
		require.NotEmpty(t, user, "the image sets a USER")
		assert.NotContains(t, []string{"root", "0"}, user[len(user)-1][1], "the worker does not run as root")
	})

	t.Run("compose CLI", func(t *testing.T) {
		cli := composeCLI()
		if cli == nil {
			t.Skip("no docker compose / docker-compose installed (.ci/run installs one and validates the file)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, cli[0], append(cli[1:], "-f", "docker-compose.yml", "config", "-q")...)
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		assert.NoError(t, err, "%s config -q:\n%s", strings.Join(cli, " "), out)
	})
}

// imageTag returns the tag of image after checking its repository.
func imageTag(t *testing.T, image, repo string) string {
	t.Helper()
	r, tag, _ := strings.Cut(image, ":")
	assert.Equal(t, repo, r, "image %s", image)
	return tag
}

func lastArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[len(args)-1]
}

// mountedFile maps a path inside s's container to the repository file a
// bind mount of s puts there, relative to this package's directory.
func mountedFile(t *testing.T, s composeService, inContainer string) string {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], "./") {
			continue
		}
		target := path.Clean(parts[1])
		if rest, ok := strings.CutPrefix(path.Clean(inContainer), target); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			f := filepath.Join("..", parts[0], filepath.FromSlash(rest))
			_, err := os.Stat(f)
			require.NoError(t, err, "%s is mounted from %s", inContainer, f)
			return f
		}
	}
	t.Fatalf("no bind mount provides %s", inContainer)
	return ""
}

// hostPort is the host port s publishes containerPort on.
func hostPort(t *testing.T, s composeService, containerPort string) string {
	t.Helper()
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		if len(parts) >= 2 && parts[len(parts)-1] == containerPort {
			return parts[len(parts)-2]
		}
	}
	t.Fatalf("port %s is not published (%v)", containerPort, s.Ports)
	return ""
}

// composeCLI is the Compose command line that is installed, if any.
func composeCLI() []string {
	if _, err := exec.LookPath("docker"); err == nil && exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return []string{"docker-compose"}
	}
	return nil
}

// mapEnv is an envconfig.EnvLookup over a compose environment map.
type mapEnv map[string]string

func (m mapEnv) Environ() []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func (m mapEnv) LookupEnv(k string) (string, bool) {
	v, ok := m[k]
	return v, ok
}
