package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
)

// PagesRead runs a statement under EXPLAIN (ANALYZE, BUFFERS), with the
// settings the audit ran it with, and returns the shared buffers its
// execution touched (hit + read; planning excluded): the I/O a statement
// costs, independent of the machine and of the cache.
func PagesRead(ctx context.Context, pool *pgxpool.Pool, st Statement) (int64, error) {
	var out []byte
	err := dbx.ReadOnly(ctx, pool, 0, func(ctx context.Context, tx pgx.Tx) error {
		if st.ByIndex {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+st.SQL, st.Args...).Scan(&out)
	})
	if err != nil {
		return 0, fmt.Errorf("explain: %w", err)
	}
	var plans []struct {
		Plan struct {
			Hit  int64 `json:"Shared Hit Blocks"`
			Read int64 `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		return 0, fmt.Errorf("explain output: %v", err)
	}
	return plans[0].Plan.Hit + plans[0].Plan.Read, nil
}

// Statement is a statement the audit runs, as Options.OnStatement sees it.
type Statement struct {
	SQL  string
	Args []any
	// ByIndex: run with enable_seqscan off (an FK counted from its index).
	ByIndex bool
}

// PagesReadAll sums PagesRead over statements.
func PagesReadAll(ctx context.Context, pool *pgxpool.Pool, stmts []Statement) (int64, error) {
	var total int64
	for _, s := range stmts {
		n, err := PagesRead(ctx, pool, s)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
