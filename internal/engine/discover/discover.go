// Package discover finds foreign keys a live database is missing and writes
// them as a prioritised migration the rollout takes.
//
// Candidates come from the catalog: child columns whose type matches a
// parent's primary key or unique key (composite keys included), minus the
// columns that already carry a foreign key. Each is scored by its name
// (customer_id → customer.id, camelCase, affixes, self-references, person
// roles, abbreviations) and by its data: the share of the child's distinct
// values present in the parent (on a sample first, exactly for the
// survivors), how unlikely that is by chance, and which other parents fit
// the values as well. Every query runs in a READ ONLY transaction with SET
// LOCAL statement_timeout and lock_timeout, at most Options.Concurrency at
// once. docs/DISCOVER.md describes the scoring and its measured precision.
package discover

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// Defaults. DefaultThreshold is where the evaluation (bench/discover)
// keeps precision and recall both high on Chinook and the demo schema.
const (
	DefaultThreshold        = 0.65
	DefaultSampleSize       = 500
	DefaultSampleRowsAbove  = 100_000
	DefaultStatementTimeout = 30 * time.Second
	DefaultLockTimeout      = time.Second
	DefaultConcurrency      = 4
	DefaultMigrationName    = "discovered_foreign_keys"
)

// nearMissFloor: candidates scoring at least this on the sample are
// checked exactly and reported, accepted or not.
const nearMissFloor = 0.3

// Options tune a run. The zero value uses every default.
type Options struct {
	// Schemas to search; empty means every user schema (not pg_*,
	// information_schema or fkrollout).
	Schemas []string `json:"schemas,omitempty"`
	// Threshold is the confidence (0..1] a candidate needs to be accepted.
	Threshold float64 `json:"threshold,omitempty"`
	// SampleSize is the number of distinct child values screened per
	// column set.
	SampleSize int `json:"sample_size,omitempty"`
	// SampleRowsAbove: tables with more rows are sampled with TABLESAMPLE
	// SYSTEM instead of read whole for the screening.
	SampleRowsAbove int64 `json:"sample_rows_above,omitempty"`
	// StatementTimeout and LockTimeout are SET LOCAL for every query.
	StatementTimeout time.Duration `json:"statement_timeout,omitempty"`
	LockTimeout      time.Duration `json:"lock_timeout,omitempty"`
	// Concurrency bounds the queries running at once.
	Concurrency int `json:"concurrency,omitempty"`
	// MigrationName names the rendered migration.
	MigrationName string `json:"migration_name,omitempty"`
	// Progress, when set, is called after each step (never concurrently).
	Progress func(Progress) `json:"-"`
}

// Progress reports one finished step of a phase: catalog, size, sample,
// probe, exact.
type Progress struct {
	Phase  string `json:"phase"`
	Done   int    `json:"done"`
	Total  int    `json:"total"`
	Detail string `json:"detail,omitempty"`
}

// Report is the result of a run: plain data, safe to return from a
// Temporal activity.
type Report struct {
	Schemas             []string `json:"schemas"`
	Threshold           float64  `json:"threshold"`
	SampleSize          int      `json:"sample_size"`
	Tables              int      `json:"tables"`
	ExistingForeignKeys int      `json:"existing_foreign_keys"`
	// Pairs is the number of type-compatible column set → key pairs,
	// Probed those whose sample was looked up in the parent, Exact those
	// checked on the whole table.
	Pairs  int `json:"pairs"`
	Probed int `json:"probed"`
	Exact  int `json:"exact"`
	// Candidates are the accepted foreign keys, best first.
	Candidates []Candidate `json:"candidates"`
	// NearMisses scored at least 0.3 but were not accepted; Reason says why.
	NearMisses []Candidate `json:"near_misses"`
	// Warnings name what could not be read (timeouts, locks).
	Warnings []string `json:"warnings,omitempty"`
	// Migration is the candidates as a migration file ("" when none).
	Migration  string `json:"migration,omitempty"`
	DurationMS int64  `json:"duration_ms"`
}

// Candidate is one foreign key the database is missing.
type Candidate struct {
	Rank       int      `json:"rank,omitempty"`
	Name       string   `json:"name"`
	Schema     string   `json:"schema"`
	Table      string   `json:"table"`
	Columns    []string `json:"columns"`
	RefSchema  string   `json:"ref_schema"`
	RefTable   string   `json:"ref_table"`
	RefColumns []string `json:"ref_columns"`
	// RefKey is the parent's primary key, unique constraint or unique index.
	RefKey     string   `json:"ref_key"`
	Confidence float64  `json:"confidence"`
	Priority   string   `json:"priority"`
	OnDelete   string   `json:"on_delete"`
	Evidence   Evidence `json:"evidence"`
	Orphans    Orphans  `json:"orphans"`
	Index      Index    `json:"index"`
	// Reason is why a near miss was not accepted.
	Reason string `json:"reason,omitempty"`
}

// Evidence is why a candidate scored as it did.
type Evidence struct {
	NameMatch  string  `json:"name_match"`
	NameScore  float64 `json:"name_score"`
	NameDetail string  `json:"name_detail,omitempty"`
	// InclusionRatio: distinct non-null child values present in the parent;
	// RowInclusion: non-null child rows with a parent (exact checks only).
	InclusionRatio float64 `json:"inclusion_ratio"`
	RowInclusion   float64 `json:"row_inclusion,omitempty"`
	DistinctValues int64   `json:"distinct_values"`
	// Exact: the figures come from the whole table, not the sample.
	Exact bool `json:"exact"`
	// TableSampled: the screening sample came from TABLESAMPLE.
	TableSampled bool `json:"table_sampled"`
	// Coverage: share of the parent's keys the child references.
	Coverage     float64 `json:"coverage"`
	ParentRows   int64   `json:"parent_rows"`
	ChildRows    int64   `json:"child_rows"`
	NullFraction float64 `json:"null_fraction"`
	Nullable     bool    `json:"nullable"`
	// DataStrength: how unlikely the inclusion is by chance (0..1).
	DataStrength float64      `json:"data_strength"`
	Competing    []Competitor `json:"competing,omitempty"`
	// WriteRate is the child's n_tup_ins + n_tup_upd + n_tup_del;
	// ParentReferences the foreign keys (existing and accepted) to the parent.
	WriteRate        int64    `json:"write_rate"`
	ParentReferences int      `json:"parent_references"`
	Why              []string `json:"why"`
}

// Orphans are child rows whose value has no parent.
type Orphans struct {
	Rows     int64 `json:"rows"`
	Distinct int64 `json:"distinct"`
	Exact    bool  `json:"exact"`
}

// Index says whether an index on the child columns supports the key.
type Index struct {
	Name     string `json:"name,omitempty"`
	Supports bool   `json:"supports"`
	// Suggested creates one when none does (as `fkrollout indexes --create`).
	Suggested string `json:"suggested,omitempty"`
}

// String is "schema.table(cols) → schema.parent(cols)".
func (c Candidate) String() string {
	return qualified(c.Schema, c.Table) + "(" + strings.Join(quoteAll(c.Columns), ", ") + ") → " +
		qualified(c.RefSchema, c.RefTable) + "(" + strings.Join(quoteAll(c.RefColumns), ", ") + ")"
}

func quoteAll(xs []string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = plan.QuoteIfNeeded(x)
	}
	return out
}

func (o Options) normalised() (Options, error) {
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Threshold < 0 || o.Threshold > 1 {
		return o, fmt.Errorf("discover: threshold must be in (0, 1], got %g", o.Threshold)
	}
	if o.SampleSize <= 0 {
		o.SampleSize = DefaultSampleSize
	}
	if o.SampleRowsAbove <= 0 {
		o.SampleRowsAbove = DefaultSampleRowsAbove
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MigrationName == "" {
		o.MigrationName = DefaultMigrationName
	}
	return o, nil
}

// runner is one run's state: the pool, options and what it learnt.
type runner struct {
	pool *pgxpool.Pool
	opts Options
	cat  *catalogData

	mu       sync.Mutex
	warnings []string
	sizes    map[*table]tableSize
	profiles map[*key]keyProfile
}

// Run discovers missing foreign keys. It only reads; a query that times
// out or waits on a lock too long becomes a warning and the run goes on.
func Run(ctx context.Context, pool *pgxpool.Pool, opts Options) (Report, error) {
	start := time.Now()
	o, err := opts.normalised()
	if err != nil {
		return Report{}, err
	}
	r := &runner{pool: pool, opts: o, sizes: map[*table]tableSize{}, profiles: map[*key]keyProfile{}}
	if err := r.readOnly(ctx, func(ctx context.Context, q querier) error {
		var err error
		r.cat, err = loadCatalog(ctx, q, o.Schemas)
		return err
	}); err != nil {
		return Report{}, fmt.Errorf("discover: read catalog: %w", err)
	}
	r.progress("catalog", 1, 1, fmt.Sprintf("%d tables, %d keys, %d foreign keys", len(r.cat.tables), len(r.cat.keys), len(r.cat.fks)))
	sets, pairs := generate(r.cat)
	if err := r.screen(ctx, sets, pairs); err != nil {
		return Report{}, fmt.Errorf("discover: screen: %w", err)
	}
	survivors := r.survivors(pairs)
	if err := r.checkExact(ctx, survivors); err != nil {
		return Report{}, fmt.Errorf("discover: exact checks: %w", err)
	}
	r.scoreAll(pairs)
	rep := r.report(survivors)
	rep.Pairs = len(pairs)
	for _, p := range pairs {
		if p.probed {
			rep.Probed++
		}
	}
	rep.Exact = len(survivors)
	rep.DurationMS = time.Since(start).Milliseconds()
	return rep, nil
}

// screen sizes the tables, profiles the parent keys, samples the child
// sets and looks the samples up: the cheap pass over every pair.
func (r *runner) screen(ctx context.Context, sets []*colset, pairs []*pair) error {
	if err := r.sizeTables(ctx, pairs); err != nil {
		return err
	}
	if err := r.profileKeys(ctx, pairs); err != nil {
		return err
	}
	if err := r.sampleSets(ctx, r.worthSampling(sets, pairs)); err != nil {
		return err
	}
	if err := r.probe(ctx, pairs); err != nil {
		return err
	}
	r.scoreAll(pairs)
	return nil
}

// survivors are the pairs worth an exact check: at least the near-miss
// floor on the sample, or named with some values in the parent (few
// distinct values with one orphan among them score low on the sample; the
// exact row counts may lift them).
func (r *runner) survivors(pairs []*pair) []*pair {
	var out []*pair
	for _, p := range pairs {
		if p.conf >= nearMissFloor || (p.name.Score > 0 && p.probed && p.included > 0) {
			out = append(out, p)
		}
	}
	return out
}

// scoreAll scores every pair with what is known so far (sample or exact)
// against the other parents of the same child set.
func (r *runner) scoreAll(pairs []*pair) {
	bySet := map[*colset][]*pair{}
	for _, p := range pairs {
		bySet[p.child] = append(bySet[p.child], p)
	}
	for _, p := range pairs {
		if p.child.unsampled || !r.size(p.parent.Table).ok {
			// Not read (a lock, a timeout: see the warnings) or not worth
			// reading: no evidence either way.
			p.conf, p.why = 0, []string{"not read"}
			continue
		}
		p.competitors = competitorsOf(p, bySet[p.child])
		_, included, distinct := p.inclusion()
		d := dataEvidence{Distinct: distinct, Included: included, Chance: p.chance, RowRatio: p.rowRatio()}
		p.conf, p.why = confidence(p.name, d, p.competitors)
	}
}

func competitorsOf(p *pair, siblings []*pair) []Competitor {
	var out []Competitor
	for _, o := range siblings {
		if o == p || (!o.probed && !o.estimated) {
			continue
		}
		ratio := o.sampleRatio()
		if ratio < competitorFloor {
			continue
		}
		out = append(out, Competitor{Parent: keyString(o.parent), NameScore: o.name.Score, Inclusion: round3(ratio), Estimated: o.estimated})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Parent < out[j].Parent })
	return out
}

func keyString(k *key) string {
	return k.Table.display() + "(" + strings.Join(quoteAll(colNames(k.Cols)), ", ") + ")"
}

func (r *runner) progress(phase string, done, total int, detail string) {
	if r.opts.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opts.Progress(Progress{Phase: phase, Done: done, Total: total, Detail: detail})
}

// warn records a query that failed softly (timeout, lock); ctx ending is
// not soft and is returned instead.
func (r *runner) warn(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, what+": "+err.Error())
	return nil
}
