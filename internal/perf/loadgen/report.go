package loadgen

import "time"

// RunOptions sizes a run. Exactly one of Duration and Iterations bounds it
// (Iterations wins when both are set).
type RunOptions struct {
	// Workers is the number of concurrent clients, each on its own
	// connection (k6's VUs). Default 1.
	Workers int `json:"workers"`
	// Duration of the measured part of the run.
	Duration time.Duration `json:"duration"`
	// Iterations is the total number of measured operations shared by all
	// workers (k6's --iterations).
	Iterations int `json:"iterations"`
	// Warmup runs the workload unmeasured first (fills caches, prepares
	// statements).
	Warmup time.Duration `json:"warmup"`
	// MaxParamRows caps the rows loaded per parameter source (default 10000).
	MaxParamRows int `json:"max_param_rows,omitempty"`
	// Seed makes the operation mix and parameter draws repeatable, so the
	// baseline and the with-FKs runs see the same sequence. 0 = fixed default.
	Seed uint64 `json:"seed,omitempty"`
}

// OpStats is one operation's result. Latencies are of successful
// executions; Count includes failures; Throughput is successful executions
// per second of measured time.
type OpStats struct {
	Operation  string  `json:"operation"`
	Units      int     `json:"units"`
	Count      int64   `json:"count"`
	Errors     int64   `json:"errors"`
	AvgMS      float64 `json:"avg_ms"`
	P50MS      float64 `json:"p50_ms"`
	P95MS      float64 `json:"p95_ms"`
	P99MS      float64 `json:"p99_ms"`
	MaxMS      float64 `json:"max_ms"`
	ErrorRate  float64 `json:"error_rate"`
	Throughput float64 `json:"throughput"`
	// FirstError is one error message, to say why Errors is not zero.
	FirstError string `json:"first_error,omitempty"`
}

// Report is a run's result, in the workload's operation order.
type Report struct {
	Workers    int       `json:"workers"`
	DurationMS float64   `json:"duration_ms"`
	StartedAt  time.Time `json:"started_at"`
	Ops        []OpStats `json:"ops"`
	Total      OpStats   `json:"total"`
}

// Op returns the stats of the named operation.
func (r Report) Op(name string) (OpStats, bool) {
	for _, o := range r.Ops {
		if o.Operation == name {
			return o, true
		}
	}
	return OpStats{}, false
}

// Bound is one statement of an operation with sample parameter values, in
// text form (nil for NULL).
type Bound struct {
	SQL  string `json:"sql"`
	Args []any  `json:"args"`
}

// SampleOp is one operation's statements bound to one draw of parameters.
type SampleOp struct {
	Operation  string  `json:"operation"`
	Statements []Bound `json:"statements"`
}
