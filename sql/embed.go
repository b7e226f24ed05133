// Package sqlassets embeds the APMS demo assets: the schema before the
// rollout, its hand-written 16-FK migration (the team's own plan format), the same plan
// in YAML and the perf-phase workload.
package sqlassets

import _ "embed"

// Schema is the demo schema (one foreign key, none of the plan's).
//
//go:embed schema.sql
var Schema string

// Migration is the demo's hand-written 16-FK migration (NOT VALID, then
// VALIDATE), the format teams already write their plans in.
//
//go:embed migration.sql
var Migration string

// Plan is Migration's foreign keys in the YAML plan format.
//
//go:embed plan.yaml
var Plan string

// Workload is the perf-phase workload (internal/perf/loadgen format).
//
//go:embed workload.yaml
var Workload string
