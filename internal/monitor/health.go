package monitor

import (
	"time"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// CatalogFK is a foreign key as the catalog has it, with whether it is
// validated (a NOT VALID one still guards new writes, but old rows were
// never checked).
type CatalogFK struct {
	FK        plan.ForeignKey `json:"fk"`
	Validated bool            `json:"validated"`
}

// HealthFK is one foreign key's monthly health.
type HealthFK struct {
	Constraint string   `json:"constraint"`
	Table      string   `json:"table"`
	References string   `json:"references"`
	Columns    []string `json:"columns"`
	Validated  bool     `json:"validated"`
	Orphans    int64    `json:"orphans"`
	// Error says why this key could not be audited (timeout...).
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// ViolationReview is the health check's review of foreign-key violations
// (SQLSTATE 23503) in one environment's server log over the period: which
// constraints refused writes, and how often. A violation is a constraint
// doing its job; many of them name an application writing references that
// do not exist. Reviewed is false when no source could read a log: the
// review was not done, which the report says.
type ViolationReview struct {
	Reviewed bool      `json:"reviewed"`
	Sources  []string  `json:"sources,omitempty"`
	Since    time.Time `json:"since"`
	// Oldest is the first log entry read; after Since, the log does not
	// cover the whole period.
	Oldest       time.Time      `json:"oldest,omitzero"`
	Total        int            `json:"total"`
	ByConstraint map[string]int `json:"by_constraint,omitempty"`
	// Note says why the review is missing or partial.
	Note string `json:"note,omitempty"`
}
