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
	"strings"
)

// LogTail counts SQLSTATE 23503 (foreign_key_violation) entries in a
// PostgreSQL server log written as csvlog or jsonlog, from where the last
// count stopped. It reads only complete records, so a line the server is
// still writing is counted next time.
type LogTail struct {
	// Path is a file or a glob; with a glob the newest match (by
	// modification time) is the current file, which follows rotation.
	Path string
	// Format is "csvlog" or "jsonlog"; empty guesses from the extension
	// (.json → jsonlog, anything else csvlog).
	Format string
}

// LogCursor is where counting stopped.
type LogCursor struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

// CodeFKViolation is SQLSTATE foreign_key_violation.
const CodeFKViolation = "23503"

// Count returns how many 23503 entries of database db (all databases when
// db is empty) were written since prev, and the new cursor. A nil prev
// primes: the cursor is set to the end of the current file, count 0. When
// the log rotated, the rest of the previous file is counted too.
func (l *LogTail) Count(prev *LogCursor, db string) (int, LogCursor, error) {
	file, err := l.current()
	if err != nil {
		return 0, LogCursor{}, err
	}
	if prev == nil {
		fi, err := os.Stat(file)
		if err != nil {
			return 0, LogCursor{}, fmt.Errorf("server log %s not readable: %w", file, err)
		}
		return 0, LogCursor{File: file, Offset: fi.Size()}, nil
	}
	total := 0
	start := prev.Offset
	if prev.File != file {
		// Rotated: finish the old file (when still there), then the new
		// one from its start.
		if n, _, err := l.countFile(prev.File, prev.Offset, db); err == nil {
			total += n
		}
		start = 0
	}
	n, off, err := l.countFile(file, start, db)
	if err != nil {
		return 0, LogCursor{}, err
	}
	return total + n, LogCursor{File: file, Offset: off}, nil
}

func (l *LogTail) current() (string, error) {
	if !strings.ContainsAny(l.Path, "*?[") {
		return l.Path, nil
	}
	matches, err := filepath.Glob(l.Path)
	if err != nil {
		return "", fmt.Errorf("server log glob %q: %w", l.Path, err)
	}
	var newest string
	var newestMod int64
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || fi.IsDir() {
			continue
		}
		if t := fi.ModTime().UnixNano(); newest == "" || t > newestMod || (t == newestMod && m > newest) {
			newest, newestMod = m, t
		}
	}
	if newest == "" {
		return "", fmt.Errorf("server log: no file matches %q", l.Path)
	}
	return newest, nil
}

func (l *LogTail) format(file string) string {
	if l.Format != "" {
		return l.Format
	}
	if strings.HasSuffix(file, ".json") {
		return "jsonlog"
	}
	return "csvlog"
}

// countFile counts from offset and returns the offset after the last
// complete record. A file shorter than offset was truncated: start over.
func (l *LogTail) countFile(file string, offset int64, db string) (int, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, offset, fmt.Errorf("server log %s not readable: %w", file, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, offset, fmt.Errorf("server log %s: %w", file, err)
	}
	if fi.Size() < offset {
		offset = 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return 0, offset, fmt.Errorf("server log %s: seek: %w", file, err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return 0, offset, fmt.Errorf("server log %s: read: %w", file, err)
	}
	// Only up to the last newline: the tail may be a record in progress.
	end := bytes.LastIndexByte(data, '\n') + 1
	data = data[:end]
	var n int
	var used int64
	if l.format(file) == "jsonlog" {
		n, used = countJSON(data, db)
	} else {
		n, used = countCSV(data, db)
	}
	return n, offset + used, nil
}

// csvlog columns (PostgreSQL 13+): 2 database_name, 12 sql_state_code.
const (
	csvDatabase = 2
	csvSQLState = 12
)

func countCSV(data []byte, db string) (int, int64) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = false
	n := 0
	var used int64
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A record still being written (open quote at the end): stop
			// before it and read it next time.
			break
		}
		used = r.InputOffset()
		if len(rec) > csvSQLState && rec[csvSQLState] == CodeFKViolation && (db == "" || rec[csvDatabase] == db) {
			n++
		}
	}
	return n, used
}

func countJSON(data []byte, db string) (int, int64) {
	n := 0
	var used int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		line := data[:i]
		data = data[i+1:]
		used += int64(i + 1)
		var e struct {
			DBName    string `json:"dbname"`
			StateCode string `json:"state_code"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if e.StateCode == CodeFKViolation && (db == "" || e.DBName == db) {
			n++
		}
	}
	return n, used
}
