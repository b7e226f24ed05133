package report

import (
	"strings"
	"testing"
)

func TestWriteSuccessMetricsLayouts(t *testing.T) {
	tests := []struct {
		name string
		rows []Metric
		want []string
	}{
		{"without phases the table keeps four columns", []Metric{{Name: "Databases", Target: "3", Actual: "3", OK: Passed(true)}},
			[]string{"| Metric | Target | Actual | Status |", "| Databases | 3 | 3 | ✅ PASS |"}},
		{"with phases it shows phase and criteria", []Metric{
			{Name: "Uptime", Target: "100%", Actual: "99%", OK: Passed(false), Note: "1 refused", Phase: "smoke-checks", Criteria: "every request answered"},
			{Name: "Watch", Target: "clean", Actual: "watching"}},
			[]string{"| Phase | Metric | Criteria | Target | Actual | Status |", "| smoke-checks | Uptime | every request answered | 100% | 99% | ❌ FAIL (1 refused) |",
				"| — | Watch | — | clean | watching | ⏳ PENDING |"}},
		{"nothing measured", nil, []string{"Nothing measured yet."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			WriteSuccessMetrics(&b, tc.rows)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("%q\ndoes not contain %q", b.String(), w)
				}
			}
		})
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
