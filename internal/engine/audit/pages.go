package audit

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PagesRead runs sql under EXPLAIN (ANALYZE, BUFFERS) and returns the
// shared buffers its execution touched (hit + read; planning excluded):
// the I/O a statement costs, independent of the machine and of the cache.
func PagesRead(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) (int64, error) {
	var out []byte
	if err := pool.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+sql, args...).Scan(&out); err != nil {
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

// Statement is a statement the audit ran, as Options.OnStatement saw it.
type Statement struct {
	SQL  string
	Args []any
}

// PagesReadAll sums PagesRead over statements.
func PagesReadAll(ctx context.Context, pool *pgxpool.Pool, stmts []Statement) (int64, error) {
	var total int64
	for _, s := range stmts {
		n, err := PagesRead(ctx, pool, s.SQL, s.Args...)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
