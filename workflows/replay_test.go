package workflows

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// (worker e2e test with -record) against today's workflow code. A change
// that would break running rollouts (a new command, a reordered step)
// fails here; guard such changes with workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/history-*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files, "no recorded histories in testdata (go test ./worker -run E2E -record)")
	r := worker.NewWorkflowReplayer()
	Register(r)
	logger := tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			// A workflow that names its children after its own id (a
			// fleet's targets, a rollout's watch) replays under that id.
			id, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".workflow-id")
			if errors.Is(err, fs.ErrNotExist) {
				require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(logger, f))
				return
			}
			require.NoError(t, err)
			file, err := os.Open(f)
			require.NoError(t, err)
			defer file.Close()
			hist, err := client.HistoryFromJSON(file, client.HistoryJSONOptions{})
			require.NoError(t, err)
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(logger, hist,
				worker.ReplayWorkflowHistoryOptions{OriginalExecution: workflow.Execution{ID: strings.TrimSpace(string(id))}}))
		})
	}
}
