package rollout

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The report's expectation rows, uptime, risks and artefacts, from a
// status with one of each: a figure met and one taken past, a smoke check
// that failed on a 502 in the first round, debt, an unindexed FK, a
// truncated orphan export and a backup.
func TestReportShowsExpectationsUptimeRisksAndArtefacts(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	st := &Status{RolloutID: "r1", Requester: requester, State: StateCompletedWithDebt, PlanName: "p",
		EnvironmentOrder: []string{"staging"}, StartedAt: t0, UpdatedAt: t0.Add(time.Hour),
		Constraints: []ConstraintStatus{
			{Name: "fk_a", Environments: map[string]ConstraintEnvState{"staging": {State: CTested}}},
			{Name: "fk_<b>", Environments: map[string]ConstraintEnvState{"staging": {State: CDebt}}},
		},
		Monitor: &MonitorResult{Status: MonitorSkipped},
		Environments: map[string]EnvReport{"staging": {
			StatsAfter: &StatsResult{Unindexed: []string{"fk_a (a_id)"}},
			Expectations: []ExpectationResult{
				{Name: "Tables", Source: "plan", Target: "= 16", Actual: "16", OK: true},
				{Name: "Validated foreign keys", Source: "worker configuration", Target: "≥ 45", Actual: "44", Detail: "1 more NOT VALID"},
			},
			Smoke: []SmokeResult{{Name: "health", OK: true, Status: 200, Expected: 200}, {Name: "delete order", Kind: "cleanup", OK: true, Status: 204, Expected: 204}},
			SmokeRounds: []SmokeRound{
				{At: t0, Checks: 1, Passed: 0, Requests: 2, Answered: 1},
				{At: t0.Add(time.Minute), Checks: 1, Passed: 1, Requests: 2, Answered: 2},
			},
			Backup:        &BackupResult{Artifacts: []BackupArtifact{{Kind: "tables", Path: "/var/backups/r1/staging/r1-staging.dump", SizeBytes: 3 << 20, SHA256: "abcdef0123456789"}}},
			OrphanExports: []OrphanExport{{FK: "fk_<b>", Round: 2, Path: "/var/backups/r1/staging/orphans/round-2/fk__b_.csv", Rows: 1000, Orphans: 5400, Truncated: true, Limit: 1000}},
		}},
	}
	md := st.Report()
	for _, want := range []string{
		"| Phase | Metric | Criteria | Target | Actual | Status |",
		"| stats-after | Tables (staging) | expected by the plan | = 16 | 16 | ✅ PASS |",
		"| stats-after | Validated foreign keys (staging) | expected by the worker configuration | ≥ 45 | 44 | ❌ FAIL (1 more NOT VALID) |",
		"| smoke-checks | Uptime (staging, smoke checks) | every smoke request answered (no refused connection, no 5xx) | 100% | 75.0% (3/4 requests, 2 round(s)) | ❌ FAIL |",
		"| smoke-checks | Smoke Checks (staging) | status, body and log assertions hold; cleanup done | 1/1 | 1/1 | ✅ PASS |",
		"## Risks and next steps",
		"staging: 1 constraint(s) stay NOT VALID (orphans accepted as debt): fk\\_\\<b\\>",
		"expected figure not met and taken past: Validated foreign keys — ≥ 45 expected, 44 measured (worker configuration).",
		"no index supports fk_a \\(a_id\\)",
		"no production watch ran (monitoring disabled)",
		"fix the remaining orphans (full lists: /var/backups/r1/staging/orphans/round-2/fk\\_\\_b\\_.csv), then run `VALIDATE CONSTRAINT`",
		"create the missing FK indexes with `CREATE INDEX CONCURRENTLY`",
		"the orphan exports hold row data",
		"## Backups and artefacts",
		"| staging | backup: tables | `/var/backups/r1/staging/r1-staging.dump` | 3.0 MiB | sha256 abcdef012345… |",
		"| staging | orphans of fk\\_\\<b\\>, audit round 2 | `/var/backups/r1/staging/orphans/round-2/fk__b_.csv` | — | 1000 of 5400 orphans, cut at the export maximum 1000 |",
	} {
		assert.Contains(t, md, want)
	}
	assert.Less(t, strings.Index(md, "## Success Metrics"), strings.Index(md, "## Risks and next steps"))
}

func TestReportWithNothingOpenSaysSo(t *testing.T) {
	st := &Status{RolloutID: "r1", State: StateCompleted, EnvironmentOrder: []string{"production"},
		Monitor:      &MonitorResult{Status: MonitorPassed},
		Environments: map[string]EnvReport{"production": {}}}
	md := st.Report()
	assert.Contains(t, md, "**Risks:** none open: every planned figure held.")
	assert.NotContains(t, md, "## Backups and artefacts", "no backup, no section")
}

func TestSmokeRoundCountsAnswersNotAssertions(t *testing.T) {
	r := smokeRound(time.Time{}, []SmokeResult{
		{Name: "fk error is 400", OK: false, Status: 400, Expected: 400, Failures: []string{"expect_body[0]: error.code is \"VALIDATION\""}},
		{Name: "down", Status: 0, Failures: []string{"no answer: connection refused"}},
		{Name: "bad gateway", Status: 502, Failures: []string{"status 502, want 200"}},
		{Name: "query", Skipped: true},
		{Name: "cleanup", Kind: "cleanup", OK: true, Status: 204},
	})
	assert.Equal(t, SmokeRound{Checks: 4, Passed: 0, Requests: 4, Answered: 2}, r)
	assert.Equal(t, `fk error is 400 (expect_body[0]: error.code is "VALIDATION")`, smokeFailure(SmokeResult{Name: "fk error is 400", Failures: []string{`expect_body[0]: error.code is "VALIDATION"`}}))
	assert.Equal(t, "health (got 500, want 200)", smokeFailure(SmokeResult{Name: "health", Status: 500, Expected: 200}), "results recorded before assertions read as before")
}
