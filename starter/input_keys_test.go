package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An --input file with keys no field takes is refused before anything is
// sent, naming each key and what it probably meant: the workflow refuses
// the same input from the UI, so every path says the same.
func TestInputFileWithMisspelledKeysIsRefused(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

	rolloutFile := write("rollout.json", `{"plan":"foreign_keys: []","requester":"rita@example.com",
		"environments":[{"name":"staging"}],"dryrun":true,"aproval":{"default":{}}}`)
	_, err := buildInput(startOptions{inputFile: rolloutFile}, now)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dryrun (did you mean "dry_run"?)`)
	assert.Contains(t, err.Error(), `aproval (did you mean "approval"?)`)

	fleetFile := write("fleet.json", `{"plan":"foreign_keys: []","requester":"rita@example.com","targets":["t1"],"batchsize":2}`)
	_, err = buildFleetInput(fleetOptions{start: startOptions{inputFile: fleetFile}}, now)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `batchsize (did you mean "batch_size"?)`)
}
