package activities

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/fkrollout/fkrollout/internal/config"
	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// recordingNotifier keeps the events; with fail set it refuses them.
type recordingNotifier struct {
	mu     sync.Mutex
	events []notify.Event
	fail   error
}

func (n *recordingNotifier) Notify(ctx context.Context, ev notify.Event) (notify.Receipt, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail != nil {
		return notify.Receipt{}, n.fail
	}
	n.events = append(n.events, ev)
	return notify.Receipt{}, nil
}

func TestPublishReportWritesFileAndPosts(t *testing.T) {
	tests := []struct {
		name      string
		id        string
		file      string
		notifyErr error
	}{
		{name: "posted", id: "fkrollout-demo-1", file: "fkrollout-demo-1.md"},
		{name: "fleet child id with a slash", id: "fleet-1/tenant-a", file: "fleet-1_tenant-a.md"},
		{name: "slack down: file still written", id: "r-2", file: "r-2.md", notifyErr: errors.New("slack post: channel_not_found")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "reports")
			n := &recordingNotifier{fail: tc.notifyErr}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			a := mustNew(t, &config.Config{ReportDir: dir}, n, slog.New(slog.NewTextHandler(io.Discard, nil)))
			a.Register(env)
			md := "# ✅ FK Rollout demo — COMPLETED\n\n| Metric | Target | Actual | Status |\n"
			thread := notify.MessageRef{Channel: "C1", TS: "1.2"}
			v, err := env.ExecuteActivity(rollout.ActPublishReport, rollout.ReportInput{RolloutID: tc.id, State: "completed", Markdown: md, Thread: thread})
			require.NoError(t, err)
			var res rollout.ReportResult
			require.NoError(t, v.Get(&res))

			assert.Equal(t, filepath.Join(dir, tc.file), res.Path)
			got, err := os.ReadFile(res.Path)
			require.NoError(t, err)
			assert.Equal(t, md, string(got))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Len(t, entries, 1, "no temporary file left behind")

			if tc.notifyErr != nil {
				assert.False(t, res.Posted)
				assert.Contains(t, res.PostError, "channel_not_found")
				return
			}
			assert.True(t, res.Posted)
			require.Len(t, n.events, 1)
			ev := n.events[0]
			assert.Equal(t, notify.KindReport, ev.Kind)
			assert.Equal(t, md, ev.Report)
			assert.Equal(t, thread, ev.Thread)
			assert.Equal(t, tc.id, ev.RolloutID)
		})
	}
}

func TestPublishReportRefusesEmptyReportAndUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o644))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	a := mustNew(t, &config.Config{ReportDir: file}, &recordingNotifier{}, nil)
	a.Register(env)
	_, err := env.ExecuteActivity(rollout.ActPublishReport, rollout.ReportInput{RolloutID: "r", Markdown: " "})
	assert.ErrorContains(t, err, "publish report r: empty report")
	_, err = env.ExecuteActivity(rollout.ActPublishReport, rollout.ReportInput{RolloutID: "r", Markdown: "# x"})
	assert.ErrorContains(t, err, "create report dir")
}
