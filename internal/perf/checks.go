package perf

import "github.com/fkrollout/fkrollout/internal/engine/plan"

// PlanCheck is the EXPLAIN (ANALYZE, BUFFERS) verdict on one foreign key's
// referential check: the lookup PostgreSQL runs on the referencing table
// for every parent-side DELETE or key UPDATE.
type PlanCheck struct {
	FK         string   `json:"fk"`
	Table      string   `json:"table"`
	Columns    []string `json:"columns"`
	RefTable   string   `json:"ref_table"`
	RefColumns []string `json:"ref_columns"`
	// CheckQuery is the lookup as the RI trigger prepares it.
	CheckQuery string `json:"check_query"`
	// ScanNode is the plan node reading the referencing table (Seq Scan,
	// Index Scan, Index Only Scan, Bitmap Heap Scan); Index the index used.
	ScanNode string `json:"scan_node"`
	Index    string `json:"index,omitempty"`
	SeqScan  bool   `json:"seq_scan"`
	// CheckMS and the buffer counts are of one execution of the generic
	// plan (the plan the RI trigger's cached statement settles on).
	CheckMS      float64 `json:"check_ms"`
	SharedHit    int64   `json:"shared_hit_blocks"`
	SharedRead   int64   `json:"shared_read_blocks"`
	RowsExamined int64   `json:"rows_removed_by_filter"`
	// DeleteMS is the FK's trigger time in a real parent-side DELETE of an
	// unreferenced key, rolled back; DeleteNote says why it is missing.
	DeleteMS    float64 `json:"delete_trigger_ms"`
	DeleteCalls int64   `json:"delete_trigger_calls"`
	DeleteNote  string  `json:"delete_note,omitempty"`
	// Advice is whether an index leads with the referencing columns;
	// Recommendation is the CREATE INDEX CONCURRENTLY to run when the check
	// scans the table and no such index exists.
	Advice         plan.IndexAdvice `json:"advice"`
	Recommendation string           `json:"recommendation,omitempty"`
	Note           string           `json:"note,omitempty"`
}

// QueryCheck is EXPLAIN (ANALYZE, BUFFERS) of one representative statement
// of the workload, run in a rolled-back transaction: a Seq Scan where an
// index was expected shows up here before production.
type QueryCheck struct {
	Operation   string   `json:"operation"`
	Statement   int      `json:"statement"`
	SQL         string   `json:"sql"`
	ExecutionMS float64  `json:"execution_ms"`
	SharedHit   int64    `json:"shared_hit_blocks"`
	SharedRead  int64    `json:"shared_read_blocks"`
	SeqScans    []string `json:"seq_scans,omitempty"`
	// TriggerMS is the time spent in constraint triggers (the FK checks an
	// INSERT pays), by constraint name.
	TriggerMS map[string]float64 `json:"trigger_ms,omitempty"`
	Error     string             `json:"error,omitempty"`
}

// NeedIndex reports the checks that recommend an index.
func NeedIndex(checks []PlanCheck) []PlanCheck {
	var out []PlanCheck
	for _, c := range checks {
		if c.Recommendation != "" {
			out = append(out, c)
		}
	}
	return out
}
