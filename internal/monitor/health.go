package monitor

import (
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
