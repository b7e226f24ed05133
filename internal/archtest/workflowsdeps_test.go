package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

const module = "github.com/fkrollout/fkrollout"

// forbidden are what workflow code must never link: a database driver, the
// SQL parser (cgo), HTTP and the Prometheus and Slack clients. Workflow code
// is deterministic and runs in the worker's workflow sandbox; it carries the
// engine's, the monitor's and the perf phase's pure types only.
var forbidden = []string{
	"github.com/jackc/pgx",
	"github.com/pganalyze/pg_query_go",
	"net/http",
	"github.com/prometheus/client_golang",
	"github.com/slack-go/slack",
}

// sdk is the Temporal SDK: it links gRPC, which links net/http, whatever
// our code does. The walk below does not enter it, so a forbidden package
// is reported only when one of our imports (or a library we chose) pulls it.
const sdk = "go.temporal.io/"

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// goList runs go list with a template and returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command(goTool(), append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// walk lists, for every forbidden package the packages matched by pattern
// reach without passing through the Temporal SDK, the chain that reaches it;
// reached is every package seen.
func walk(t *testing.T, pattern string) (bad []string, reached map[string]string) {
	t.Helper()
	roots := goList(t, pattern)
	imports := map[string][]string{}
	for _, line := range goList(t, "-deps", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, pattern) {
		f := strings.Fields(line)
		imports[f[0]] = f[1:]
	}
	// Breadth-first, remembering how each package was reached so a
	// failure names the chain to cut.
	from := map[string]string{}
	queue := slices.Clone(roots)
	for _, r := range roots {
		from[r] = ""
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if isForbidden(p) {
			bad = append(bad, chain(from, p))
			continue
		}
		for _, imp := range imports[p] {
			if _, seen := from[imp]; seen || strings.HasPrefix(imp, sdk) {
				continue
			}
			from[imp] = p
			queue = append(queue, imp)
		}
	}
	return bad, from
}

func TestWorkflowsLinkOnlyPureTypes(t *testing.T) {
	bad, reached := walk(t, module+"/workflows/...")
	if len(bad) > 0 {
		t.Errorf("workflow code links packages it must not (each line: how it is reached):\n%s", strings.Join(bad, "\n"))
	}
	// The walk must have seen our own pure packages, or it proves nothing.
	for _, want := range []string{module + "/internal/engine/plan", module + "/internal/monitor", module + "/internal/perf", module + "/internal/perf/loadgen"} {
		if _, ok := reached[want]; !ok {
			t.Errorf("%s is not among the workflow packages' dependencies: the guard no longer covers it", want)
		}
	}
}

// TestGuardCatchesImpurePackages runs the same walk from packages that link
// the parser, the driver and the HTTP and Prometheus clients: it must find
// each, or a passing TestWorkflowsLinkOnlyPureTypes means nothing.
func TestGuardCatchesImpurePackages(t *testing.T) {
	tests := []struct {
		pkg  string
		want []string
	}{
		{"internal/engine/sqlplan", []string{"internal/engine/sqlplan → github.com/pganalyze/pg_query_go/v6"}},
		{"internal/monitor/sources", []string{"internal/monitor/sources → github.com/jackc/pgx/v5", "internal/monitor/sources → net/http", "internal/monitor/sources → github.com/prometheus/client_golang/api"}},
		{"internal/perf/loadgen/runner", []string{"internal/perf/loadgen/runner → github.com/jackc/pgx/v5"}},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			bad, _ := walk(t, module+"/"+tt.pkg)
			for _, w := range tt.want {
				assert.Contains(t, bad, w)
			}
		})
	}
}

func isForbidden(pkg string) bool {
	for _, f := range forbidden {
		if pkg == f || strings.HasPrefix(pkg, f+"/") {
			return true
		}
	}
	return false
}

func chain(from map[string]string, p string) string {
	var c []string
	for ; p != ""; p = from[p] {
		c = append(c, strings.TrimPrefix(p, module+"/"))
	}
	slices.Reverse(c)
	return strings.Join(c, " → ")
}
