package sources

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Lines as PostgreSQL 15 writes them (csvlog: 26 columns; jsonlog: one
// object per line). The second csv record has a quoted multi-line message.
const (
	csvFK    = `2026-01-10 02:00:01.123 UTC,"app","shop",1234,"127.0.0.1:5555",65a1.4d2,3,"INSERT",2026-01-10 02:00:00 UTC,3/7,0,ERROR,23503,"insert or update on table ""items"" violates foreign key constraint ""items_order_fk""","Key (order_id)=(9) is not present in table ""orders"".",,,,,"INSERT INTO items(order_id) VALUES (9)",,,"psql","client backend",,0` + "\n"
	csvOther = `2026-01-10 02:00:02.000 UTC,"app","shop",1234,"127.0.0.1:5555",65a1.4d2,4,"SELECT",2026-01-10 02:00:00 UTC,3/8,0,ERROR,42P01,"relation ""nope""
does not exist",,,,,,"SELECT * FROM nope",15,,"psql","client backend",,0` + "\n"
	csvOtherDB = `2026-01-10 02:00:03.000 UTC,"app","other",99,"127.0.0.1:5556",65a1.4d3,1,"INSERT",2026-01-10 02:00:00 UTC,4/1,0,ERROR,23503,"violates foreign key constraint",,,,,,,,,"psql","client backend",,0` + "\n"
	jsonFK     = `{"timestamp":"2026-01-10 02:00:01.123 UTC","user":"app","dbname":"shop","pid":1234,"error_severity":"ERROR","state_code":"23503","message":"insert or update on table \"items\" violates foreign key constraint \"items_order_fk\""}` + "\n"
	jsonOther  = `{"timestamp":"2026-01-10 02:00:02.000 UTC","user":"app","dbname":"shop","pid":1234,"error_severity":"LOG","message":"checkpoint complete"}` + "\n"
)

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func TestLogTailCSV(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postgresql.csv")
	appendFile(t, path, csvFK+csvFK) // before priming: not counted
	lt := &LogTail{Path: path}
	n, cur, err := lt.Count(nil, "shop")
	require.NoError(t, err)
	assert.Zero(t, n)

	appendFile(t, path, csvFK+csvOther+csvOtherDB+csvFK)
	n, cur, err = lt.Count(&cur, "shop")
	require.NoError(t, err)
	assert.Equal(t, 2, n, "two 23503 in database shop; the other database's is not ours")

	// A record being written (open quote, no end yet) waits for the next count.
	half := csvFK[:len(csvFK)/2]
	appendFile(t, path, half)
	n, cur, err = lt.Count(&cur, "shop")
	require.NoError(t, err)
	assert.Zero(t, n)
	appendFile(t, path, csvFK[len(csvFK)/2:])
	n, cur, err = lt.Count(&cur, "shop")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the completed record is counted once")

	// Cut inside a quoted multi-line message, just after its newline.
	cut := len(`2026-01-10 02:00:02.000 UTC,"app","shop",1234,"127.0.0.1:5555",65a1.4d2,4,"SELECT",2026-01-10 02:00:00 UTC,3/8,0,ERROR,42P01,"relation ""nope""`) + 1
	appendFile(t, path, csvOther[:cut])
	n, cur, err = lt.Count(&cur, "shop")
	require.NoError(t, err)
	assert.Zero(t, n)
	appendFile(t, path, csvOther[cut:]+csvFK)
	n, cur, err = lt.Count(&cur, "shop")
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the split record parses whole once complete")

	all, _, err := lt.Count(&LogCursor{File: path}, "")
	require.NoError(t, err)
	assert.Equal(t, 7, all, "every database when none is named")
}

func TestLogTailJSONAndRotation(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "postgresql-01.json")
	appendFile(t, old, jsonOther)
	lt := &LogTail{Path: filepath.Join(dir, "postgresql-*.json")}
	_, cur, err := lt.Count(nil, "shop")
	require.NoError(t, err)
	assert.Equal(t, old, cur.File)

	appendFile(t, old, jsonFK)
	newer := filepath.Join(dir, "postgresql-02.json")
	appendFile(t, newer, jsonFK+jsonOther+jsonFK)
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(newer, future, future))
	n, cur, err := lt.Count(&cur, "shop")
	require.NoError(t, err)
	assert.Equal(t, 3, n, "rest of the rotated file plus the new one")
	assert.Equal(t, newer, cur.File)

	_, _, err = (&LogTail{Path: filepath.Join(dir, "missing.csv")}).Count(nil, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not readable")
}
