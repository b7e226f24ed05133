package rollout

import (
	"fmt"
	"strings"
	"time"
)

// smokeFailure says why one smoke check or cleanup step failed: what did
// not hold (status, body, capture, log), or the status alone for results
// recorded before assertions existed.
func smokeFailure(s SmokeResult) string {
	name := s.Name
	if s.Kind == "cleanup" {
		name = "cleanup " + name
	}
	switch {
	case len(s.Failures) > 0:
		return fmt.Sprintf("%s (%s)", name, strings.Join(s.Failures, "; "))
	case s.Skipped:
		return fmt.Sprintf("%s (%s)", name, s.Detail)
	}
	return fmt.Sprintf("%s (got %d, want %d)", name, s.Status, s.Expected)
}

// SmokeRound is one run of an environment's smoke checks, counted: the
// uptime figure of the report is made of these.
type SmokeRound struct {
	At       time.Time `json:"at"`
	Checks   int       `json:"checks"`
	Passed   int       `json:"passed"`
	Requests int       `json:"requests"`
	// Answered counts requests the application answered without a server
	// error (any status below 500): it was up, whatever the assertions said.
	Answered int `json:"answered"`
}

// smokeRound counts one run's results (cleanup steps included: each is a
// request to the application).
func smokeRound(at time.Time, rs []SmokeResult) SmokeRound {
	r := SmokeRound{At: at}
	for _, s := range rs {
		if s.Kind == "" {
			r.Checks++
			if s.OK {
				r.Passed++
			}
		}
		if s.Skipped {
			continue
		}
		r.Requests++
		if s.Status > 0 && s.Status < 500 {
			r.Answered++
		}
	}
	return r
}
