package activities

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fkrollout/fkrollout/internal/notify"
	"github.com/fkrollout/fkrollout/workflows/rollout"
)

// PublishReport writes the completion report to <report_dir>/<rollout-id>.md
// (atomically: a reader never sees half a report) and posts it through the
// notifier (Slack: in the rollout's thread). Only the file can fail the
// activity; a notifier error is returned in the result so a Slack outage
// never costs the report.
func (a *Activities) PublishReport(ctx context.Context, in rollout.ReportInput) (rollout.ReportResult, error) {
	if strings.TrimSpace(in.Markdown) == "" {
		return rollout.ReportResult{}, fmt.Errorf("publish report %s: empty report", in.RolloutID)
	}
	path, err := writeReport(a.Config.ReportDir, in.RolloutID, in.Markdown)
	if err != nil {
		return rollout.ReportResult{}, fmt.Errorf("publish report %s: %w", in.RolloutID, err)
	}
	res := rollout.ReportResult{Path: path, SizeBytes: len(in.Markdown)}
	ev := notify.Event{RolloutID: in.RolloutID, Kind: notify.KindReport, Thread: in.Thread, Report: in.Markdown,
		Text: "completion report: " + in.State}
	if _, err := a.Notify(ctx, ev); err != nil {
		res.PostError = a.redact(err.Error())
		activityLogger(ctx, a.Log).Warn("completion report not posted", "rollout_id", in.RolloutID, "error", res.PostError)
		return res, nil
	}
	res.Posted = true
	return res, nil
}

// ReportFileName is the report's file name for a rollout id (workflow ids
// may contain '/', which would otherwise make directories).
func ReportFileName(rolloutID string) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, rolloutID)
	return strings.TrimLeft(safe, ".") + ".md"
}

func writeReport(dir, rolloutID, md string) (string, error) {
	if dir == "" {
		dir = "reports"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create report dir: %w", err)
	}
	path := filepath.Join(dir, ReportFileName(rolloutID))
	tmp, err := os.CreateTemp(dir, ".report-*")
	if err != nil {
		return "", fmt.Errorf("write report: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(md); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("write report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("write report %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path, nil
	}
	return abs, nil
}
