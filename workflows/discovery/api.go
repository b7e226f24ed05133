package discovery

// The contract of FKDiscover: names, input and result.

import (
	"encoding/json"
)

// WorkflowName is the registered workflow type.
const WorkflowName = "FKDiscover"

// ActDiscoverForeignKeys runs discovery against one environment, read-only.
const ActDiscoverForeignKeys = "DiscoverForeignKeys"

// Input names the environment (from the worker's configuration,
// never a DSN) and tunes the search.
type Input struct {
	Environment string `json:"environment"`
	// Schemas to search (default: every user schema).
	Schemas []string `json:"schemas,omitempty"`
	// Threshold is the confidence a candidate needs (0 < t ≤ 1; default 0.65).
	Threshold float64 `json:"threshold,omitempty"`
}

// Result is what the UI shows as the workflow's result: the
// proposals in a line each, the migration to review and start, and the
// whole report (evidence, near misses) for tools.
type Result struct {
	Environment string     `json:"environment"`
	Summary     string     `json:"summary"`
	Candidates  []Proposal `json:"candidates"`
	Migration   string     `json:"migration"`
	// Next is how to go from here to a rollout.
	Next       []string        `json:"next"`
	Warnings   []string        `json:"warnings,omitempty"`
	DurationMS int64           `json:"duration_ms"`
	Report     json.RawMessage `json:"report,omitempty"`
}

// Proposal is one proposed foreign key in a line.
type Proposal struct {
	Name       string  `json:"name"`
	FK         string  `json:"fk"`
	Confidence float64 `json:"confidence"`
	Priority   string  `json:"priority"`
	OnDelete   string  `json:"on_delete"`
	Orphans    int64   `json:"orphans"`
	Indexed    bool    `json:"indexed"`
}
