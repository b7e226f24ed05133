package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/fkrollout/fkrollout/internal/config"
)

// TestDockerComposeIsConsistent checks docker-compose.yml against the code it
// runs (CI has no container registry, so the stack itself is not started
// here): the Temporal image is the CLI version the Makefile pins, the worker's
// environment is a configuration the worker accepts with both demo
// environments, Prometheus scrapes the address the worker serves metrics on,
// and every file the stack mounts or builds from exists.
func TestDockerComposeIsConsistent(t *testing.T) {
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       string            `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Entrypoint  []string          `yaml:"entrypoint"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(mustRead(t, "../docker-compose.yml")), &compose))
	for _, s := range []string{"postgres", "temporal", "seed", "worker", "starter", "prometheus"} {
		require.Contains(t, compose.Services, s)
	}

	pinned := regexp.MustCompile(`TEMPORAL_VERSION := v(\S+)`).FindStringSubmatch(mustRead(t, "../Makefile"))
	require.Len(t, pinned, 2)
	assert.Equal(t, "temporalio/temporal:"+pinned[1], compose.Services["temporal"].Image)

	worker := compose.Services["worker"]
	assert.Equal(t, ".", worker.Build)
	assert.Equal(t, "temporal:7233", worker.Environment["TEMPORAL_ADDRESS"], "merged from the shared anchor")
	lookup := func(k string) (string, bool) {
		if k == "\x00names" {
			var names []string
			for n := range worker.Environment {
				if strings.HasPrefix(n, "FKROLLOUT_DSN_") {
					names = append(names, n)
				}
			}
			return strings.Join(names, "\n"), true
		}
		v, ok := worker.Environment[k]
		return v, ok
	}
	cfg, err := config.LoadFrom("", lookup)
	require.NoError(t, err)
	assert.Equal(t, []string{"production", "staging"}, cfg.EnvironmentNames())
	for _, n := range cfg.EnvironmentNames() {
		e, _ := cfg.Environment(n)
		assert.Contains(t, e.DSN, "/fkr_demo_"+n+"?", "the worker's %s DSN names the database the seed service creates", n)
	}
	_, port, _ := strings.Cut(cfg.Metrics.ListenAddr, ":")
	assert.Contains(t, mustRead(t, "../deploy/prometheus.yml"), `"worker:`+port+`"`)
	assert.Equal(t, "demodb", compose.Services["seed"].Entrypoint[0])

	for _, f := range []string{"../Dockerfile", "../deploy/prometheus.yml", "../.dockerignore"} {
		_, err := os.Stat(f)
		assert.NoError(t, err, f)
	}
	dockerfile := mustRead(t, "../Dockerfile")
	for _, pkg := range []string{"./worker", "./starter", "./scripts/demodb"} {
		assert.Contains(t, dockerfile, pkg)
	}
}
