package sources

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Violations is what a server log says about foreign-key violations
// (SQLSTATE 23503) since a time: how many per constraint, and which files
// were read. The health check's constraint-violation review.
type Violations struct {
	Since time.Time `json:"since"`
	// ByConstraint counts violations per constraint name (the name
	// PostgreSQL's message gives); "" is a 23503 without one.
	ByConstraint map[string]int `json:"by_constraint,omitempty"`
	Total        int            `json:"total"`
	Files        []string       `json:"files"`
	// Oldest is the first entry read: a log that starts after Since does
	// not cover the whole period (rotation, retention).
	Oldest time.Time `json:"oldest,omitzero"`
}

var fkConstraint = regexp.MustCompile(`violates foreign key constraint "((?:[^"]|"")+)"`)

// logTime is how csvlog and jsonlog write timestamps.
const logTime = "2006-01-02 15:04:05.000 MST"

// Review reads every file the log path matches (all rotated files, not
// only the newest) and counts 23503 entries of database db (every database
// when empty) logged at or after since.
func (l *LogTail) Review(since time.Time, db string) (Violations, error) {
	v := Violations{Since: since, ByConstraint: map[string]int{}}
	files := []string{l.Path}
	if strings.ContainsAny(l.Path, "*?[") {
		m, err := filepath.Glob(l.Path)
		if err != nil {
			return v, fmt.Errorf("server log glob %q: %w", l.Path, err)
		}
		files = m
	}
	slices.Sort(files)
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return v, fmt.Errorf("server log %s not readable: %w", f, err)
		}
		v.Files = append(v.Files, f)
		add := func(ts, dbName, code, msg string) {
			at, err := time.Parse(logTime, ts)
			if err != nil {
				return
			}
			if v.Oldest.IsZero() || at.Before(v.Oldest) {
				v.Oldest = at
			}
			if code != CodeFKViolation || at.Before(since) || (db != "" && dbName != db) {
				return
			}
			name := ""
			if m := fkConstraint.FindStringSubmatch(msg); m != nil {
				name = strings.ReplaceAll(m[1], `""`, `"`)
			}
			v.ByConstraint[name]++
			v.Total++
		}
		if l.format(f) == "jsonlog" {
			reviewJSON(data, add)
		} else {
			reviewCSV(data, add)
		}
	}
	if len(v.Files) == 0 {
		return v, fmt.Errorf("server log: no file matches %q", l.Path)
	}
	return v, nil
}

// csvlog columns (PostgreSQL 13+): 0 log_time, 13 message.
const (
	csvTime    = 0
	csvMessage = 13
)

func reviewCSV(data []byte, add func(ts, db, code, msg string)) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) || (err != nil && !isFieldError(err)) {
			return
		}
		if err != nil || len(rec) <= csvMessage {
			continue
		}
		add(rec[csvTime], rec[csvDatabase], rec[csvSQLState], rec[csvMessage])
	}
}

func isFieldError(err error) bool {
	var pe *csv.ParseError
	return errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrQuote)
}

func reviewJSON(data []byte, add func(ts, db, code, msg string)) {
	for _, line := range bytes.Split(data, []byte("\n")) {
		var e struct {
			Timestamp string `json:"timestamp"`
			DBName    string `json:"dbname"`
			StateCode string `json:"state_code"`
			Message   string `json:"message"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		add(e.Timestamp, e.DBName, e.StateCode, e.Message)
	}
}
