// Package devserver starts the pinned Temporal CLI's dev server for tests,
// with fkrollout's search attributes registered. A missing CLI is a test
// failure with instructions (make temporal), never a skip: CI builds it.
package devserver

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	enums "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"google.golang.org/protobuf/encoding/protojson"
)

// EnvCLI names the variable pointing at the Temporal CLI (the Makefile
// exports it as bin/temporal).
const EnvCLI = "FKROLLOUT_TEMPORAL_CLI"

// CLIPath returns the Temporal CLI: $FKROLLOUT_TEMPORAL_CLI, else bin/temporal
// in the nearest parent directory holding go.mod.
func CLIPath() (string, error) {
	if p := os.Getenv(EnvCLI); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w (run make temporal)", EnvCLI, p, err)
		}
		return p, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "bin", "temporal")
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("temporal CLI not found at %s: run make temporal (or set %s)", p, EnvCLI)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("temporal CLI not found: run make temporal (or set %s)", EnvCLI)
		}
		dir = parent
	}
}

// Start starts a dev server on a free port for the test, with the given
// search attributes registered on its namespace, and stops it at cleanup.
// Its log goes to the test log only on failure.
func Start(t testing.TB, attrs temporal.SearchAttributes) *testsuite.DevServer {
	t.Helper()
	srv, _ := start(t, attrs, false)
	return srv
}

// StartWithDynamicConfig is Start with server dynamic config values
// ("limit.historyCount.suggestContinueAsNew=40"): a test reaches a server
// limit in a few events instead of thousands.
func StartWithDynamicConfig(t testing.TB, attrs temporal.SearchAttributes, values ...string) *testsuite.DevServer {
	t.Helper()
	var args []string
	for _, v := range values {
		args = append(args, "--dynamic-config-value", v)
	}
	srv, _ := start(t, attrs, false, args...)
	return srv
}

// StartWithUI is Start with the Temporal Web UI served on a free port of
// 127.0.0.1; it returns the server and the UI's base URL. Browser tests use
// it: the UI is off otherwise, so other tests do not pay for it.
func StartWithUI(t testing.TB, attrs temporal.SearchAttributes) (*testsuite.DevServer, string) {
	t.Helper()
	return start(t, attrs, true)
}

func start(t testing.TB, attrs temporal.SearchAttributes, ui bool, extraArgs ...string) (*testsuite.DevServer, string) {
	t.Helper()
	path, err := CLIPath()
	if err != nil {
		t.Fatalf("devserver: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logf, err := os.CreateTemp(t.TempDir(), "devserver-*.log")
	if err != nil {
		t.Fatal(err)
	}
	opts := testsuite.DevServerOptions{
		ExistingPath:     path,
		SearchAttributes: attrs,
		ClientOptions:    &client.Options{Logger: nopLogger{}},
		LogLevel:         "error",
		Stdout:           logf,
		Stderr:           logf,
		ExtraArgs:        extraArgs,
	}
	var uiURL string
	if ui {
		port, err := freePort()
		if err != nil {
			t.Fatalf("devserver: %v", err)
		}
		opts.EnableUI, opts.UIPort = true, strconv.Itoa(port)
		uiURL = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	srv, err := testsuite.StartDevServer(ctx, opts)
	if err != nil {
		t.Fatalf("devserver: start %s: %v", path, err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Logf("devserver: stop: %v", err)
		}
		if t.Failed() {
			_, _ = logf.Seek(0, io.SeekStart)
			b, _ := io.ReadAll(io.LimitReader(logf, 8000))
			t.Logf("devserver log:\n%s", b)
		}
		logf.Close()
	})
	return srv, uiURL
}

// freePort asks the kernel for a free TCP port. The port is released
// before the CLI binds it; a collision in between fails the start loudly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type nopLogger struct{}

func (nopLogger) Debug(string, ...any) {}
func (nopLogger) Info(string, ...any)  {}
func (nopLogger) Warn(string, ...any)  {}
func (nopLogger) Error(string, ...any) {}

// HistoryJSON returns a workflow's whole history in the JSON of `temporal
// workflow show --output json`: what the replayer reads and what tests scan
// for secrets.
func HistoryJSON(ctx context.Context, c client.Client, workflowID string) ([]byte, error) {
	return RunHistoryJSON(ctx, c, workflowID, "")
}

// RunHistoryJSON is HistoryJSON of one run of the workflow (a run that
// continued as new); runID "" is the latest run.
func RunHistoryJSON(ctx context.Context, c client.Client, workflowID, runID string) ([]byte, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", workflowID, err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	if err != nil {
		return nil, fmt.Errorf("history of %s: encode: %w", workflowID, err)
	}
	return b, nil
}
