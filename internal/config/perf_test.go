package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPerfWorkloadsFromFile(t *testing.T) {
	dir := t.TempDir()
	wl := filepath.Join(dir, "checkout.yaml")
	require.NoError(t, os.WriteFile(wl, []byte("operations:\n  - name: one\n    sql: SELECT 1\n"), 0o600))
	path := filepath.Join(dir, "fkrollout.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`
environments:
  staging:
    dsn: postgres://app@staging/apms
perf:
  workloads:
    checkout: `+wl+`
    gone: `+filepath.Join(dir, "missing.yaml")+`
`), 0o600))
	c, err := LoadFrom(path, lookupFrom(nil))
	require.NoError(t, err)
	assert.Equal(t, []string{"checkout", "gone"}, c.PerfWorkloadNames())

	text, err := c.ReadPerfWorkload("checkout")
	require.NoError(t, err)
	assert.Contains(t, text, "SELECT 1")

	_, err = c.ReadPerfWorkload("gone")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `perf workload "gone"`)

	_, err = c.ReadPerfWorkload("nightly")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "configured: checkout, gone, demo (built in)")
}
