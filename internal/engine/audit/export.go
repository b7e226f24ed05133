package audit

import (
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fkrollout/fkrollout/internal/engine/dbx"
	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

// DefaultExportMaxRows bounds an orphan export unless configured.
const DefaultExportMaxRows = 100000

// ExportOptions says where an orphan export goes and what it shows.
type ExportOptions struct {
	// Dir receives the file (created 0700; the file is 0600: the rows may
	// be sensitive).
	Dir string
	// MaxRows bounds the rows written (default DefaultExportMaxRows); the
	// result says when the list was cut.
	MaxRows int64
	// Columns are context columns of the child table shown after the key
	// and the FK columns (e.g. created_at, status); never secrets: only
	// the worker's configuration names them.
	Columns []string
	// StatementTimeout bounds the count and the read (default 5m).
	StatementTimeout time.Duration
}

// Export is one constraint's orphan file.
type Export struct {
	FK   string
	Path string
	// Rows written; Orphans counted in the same snapshot.
	Rows, Orphans int64
	Truncated     bool
	Limit         int64
	SHA256        string
}

// ExportOrphans writes every orphan row of fk (up to MaxRows, in key
// order) to <Dir>/<constraint>.csv: the child's key columns, the FK
// columns, then the context columns, as text; NULL is an empty cell. A
// value a spreadsheet would run as a formula (=, +, -, @ and not a number)
// gets a leading '. Count and rows come from one READ ONLY, REPEATABLE
// READ snapshot, so they agree under traffic. The file appears whole or
// not at all.
func ExportOrphans(ctx context.Context, pool *pgxpool.Pool, fk plan.ForeignKey, o ExportOptions) (Export, error) {
	if err := checkFK(fk); err != nil {
		return Export{}, err
	}
	if o.Dir == "" {
		return Export{}, errors.New("export orphans: no directory")
	}
	if o.MaxRows <= 0 {
		o.MaxRows = DefaultExportMaxRows
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 5 * time.Minute
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return Export{}, fmt.Errorf("export orphans of %s: %w", fk.Name, err)
	}
	out := Export{FK: fk.Name, Limit: o.MaxRows, Path: filepath.Join(o.Dir, fileName(fk.Name)+".csv")}
	tmp, err := os.CreateTemp(o.Dir, ".orphans-*")
	if err != nil {
		return out, fmt.Errorf("export orphans of %s: %w", fk.Name, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	w := csv.NewWriter(io.MultiWriter(tmp, h))
	err = dbx.ReadOnly(ctx, pool, o.StatementTimeout, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return fmt.Errorf("set isolation: %w", err)
		}
		info, err := loadTable(ctx, tx, fk)
		if err != nil {
			return err
		}
		for _, c := range o.Columns {
			if _, ok := info.notNull[c]; !ok {
				return fmt.Errorf("export column %q: table %s has no such column", c, fk.Table)
			}
		}
		pred := orphanPredicate(fk)
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+fk.Table.Sanitize()+" c WHERE "+pred).Scan(&out.Orphans); err != nil {
			return fmt.Errorf("count orphans: %w", err)
		}
		keyCols, keyExprs := info.keyColumns()
		header := append([]string{}, keyCols...)
		sel := append([]string{}, keyExprs...)
		for _, c := range append(append([]string{}, fk.Columns...), o.Columns...) {
			header = append(header, c)
			sel = append(sel, "(c."+quote(c)+")::text")
		}
		if err := w.Write(header); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+fk.Table.Sanitize()+" c WHERE "+pred+
			" ORDER BY "+info.orderBy()+" LIMIT "+strconv.FormatInt(o.MaxRows, 10))
		if err != nil {
			return fmt.Errorf("read orphans: %w", err)
		}
		defer rows.Close()
		vals := make([]*string, len(sel))
		dest := make([]any, len(sel))
		for i := range vals {
			dest[i] = &vals[i]
		}
		rec := make([]string, len(sel))
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return fmt.Errorf("read orphans: %w", err)
			}
			for i, v := range vals {
				rec[i] = ""
				if v != nil {
					rec[i] = cellText(*v)
				}
			}
			if err := w.Write(rec); err != nil {
				return err
			}
			out.Rows++
		}
		return rows.Err()
	})
	if err == nil {
		w.Flush()
		err = w.Error()
	}
	if err == nil {
		err = tmp.Close()
	} else {
		tmp.Close()
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out.Path)
	}
	if err != nil {
		return out, fmt.Errorf("export orphans of %s: %w", fk.ID(), err)
	}
	out.Truncated = out.Rows < out.Orphans
	out.SHA256 = hex.EncodeToString(h.Sum(nil))
	return out, nil
}

// cellText keeps a spreadsheet from running a value as a formula.
func cellText(v string) string {
	if v == "" || !strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return v
	}
	if _, err := strconv.ParseFloat(v, 64); err == nil {
		return v
	}
	return "'" + v
}

// fileName is a constraint name safe as a file name on any system.
func fileName(s string) string {
	out := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
	if out == "" {
		return "constraint"
	}
	return out
}
