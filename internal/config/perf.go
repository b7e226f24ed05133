package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// PerfConfig is the perf phase's part of the worker configuration:
//
//	perf:
//	  workloads:
//	    checkout: /etc/fkrollout/workloads/checkout.yaml
//
// A rollout names a workload ("checkout"); the worker reads the file
// (internal/loadgen format). The name "demo" always resolves to the demo
// schema's workload unless configured here.
type PerfConfig struct {
	// Workloads maps a workload name to a YAML file path.
	Workloads map[string]string `yaml:"workloads"`
}

// PerfWorkloadFile returns the file of a configured workload; ok is false
// when the name is not configured.
func (c *Config) PerfWorkloadFile(name string) (path string, ok bool) {
	path, ok = c.Perf.Workloads[name]
	return path, ok
}

// PerfWorkloadNames lists the configured workload names, sorted.
func (c *Config) PerfWorkloadNames() []string {
	names := make([]string, 0, len(c.Perf.Workloads))
	for n := range c.Perf.Workloads {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ReadPerfWorkload reads a configured workload's YAML text.
func (c *Config) ReadPerfWorkload(name string) (string, error) {
	path, ok := c.PerfWorkloadFile(name)
	if !ok {
		return "", fmt.Errorf("perf workload %q is not configured on this worker (configured: %s)", name, strings.Join(append(c.PerfWorkloadNames(), "demo (built in)"), ", "))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("perf workload %q: %w", name, err)
	}
	return string(b), nil
}
