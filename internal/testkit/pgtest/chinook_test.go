package pgtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fkrollout/fkrollout/internal/testkit/pgtest"
)

// chinookDump is what pg_dump 15 writes for Chinook's foreign keys: schema-
// qualified, ON DELETE / ON UPDATE NO ACTION omitted.
const chinookDump = `ALTER TABLE ONLY public.album
    ADD CONSTRAINT album_artist_id_fkey FOREIGN KEY (artist_id) REFERENCES public.artist(artist_id);

ALTER TABLE ONLY public.customer
    ADD CONSTRAINT customer_support_rep_id_fkey FOREIGN KEY (support_rep_id) REFERENCES public.employee(employee_id);

ALTER TABLE ONLY public.employee
    ADD CONSTRAINT employee_reports_to_fkey FOREIGN KEY (reports_to) REFERENCES public.employee(employee_id);

ALTER TABLE ONLY public.invoice
    ADD CONSTRAINT invoice_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES public.customer(customer_id);

ALTER TABLE ONLY public.invoice_line
    ADD CONSTRAINT invoice_line_invoice_id_fkey FOREIGN KEY (invoice_id) REFERENCES public.invoice(invoice_id);

ALTER TABLE ONLY public.invoice_line
    ADD CONSTRAINT invoice_line_track_id_fkey FOREIGN KEY (track_id) REFERENCES public.track(track_id);

ALTER TABLE ONLY public.playlist_track
    ADD CONSTRAINT playlist_track_playlist_id_fkey FOREIGN KEY (playlist_id) REFERENCES public.playlist(playlist_id);

ALTER TABLE ONLY public.playlist_track
    ADD CONSTRAINT playlist_track_track_id_fkey FOREIGN KEY (track_id) REFERENCES public.track(track_id);

ALTER TABLE ONLY public.track
    ADD CONSTRAINT track_album_id_fkey FOREIGN KEY (album_id) REFERENCES public.album(album_id);

ALTER TABLE ONLY public.track
    ADD CONSTRAINT track_genre_id_fkey FOREIGN KEY (genre_id) REFERENCES public.genre(genre_id);

ALTER TABLE ONLY public.track
    ADD CONSTRAINT track_media_type_id_fkey FOREIGN KEY (media_type_id) REFERENCES public.media_type(media_type_id);
`

// chinookRows are Chinook 1.4.5's row counts.
var chinookRows = map[string]int64{"album": 347, "artist": 275, "customer": 59, "employee": 8, "genre": 25,
	"invoice": 412, "invoice_line": 2240, "media_type": 5, "playlist": 18, "playlist_track": 8715, "track": 3503}

func TestLoadChinook(t *testing.T) {
	db := pgtest.New(t)
	start := time.Now()
	pgtest.LoadChinook(t, db)
	t.Logf("LoadChinook took %v", time.Since(start).Round(time.Millisecond))

	sums := pgtest.TableChecksums(t, db)
	require.Len(t, sums, 11, "tables in public: %v", sums)
	for _, name := range pgtest.ChinookTables {
		assert.Equal(t, chinookRows[name], sums[name].Rows, name)
	}

	fks := pgtest.ChinookForeignKeys(t, db)
	require.Len(t, fks, 11)
	assert.Equal(t, pgtest.ChinookFK{Schema: "public", Table: "track", Name: "track_album_id_fkey",
		Def: "FOREIGN KEY (album_id) REFERENCES album(album_id)"}, fks[8])

	start = time.Now()
	assert.Equal(t, chinookDump, pgtest.DumpForeignKeySQL(t, db))
	t.Logf("DumpForeignKeySQL took %v", time.Since(start).Round(time.Millisecond))

	again := pgtest.TableChecksums(t, db, pgtest.ChinookTables...)
	assert.Equal(t, sums, again, "checksums are stable")
	db.Exec(t, `DELETE FROM playlist_track WHERE ctid = (SELECT min(ctid) FROM playlist_track)`)
	after := pgtest.TableChecksums(t, db, "playlist_track", "public.track")
	assert.Equal(t, sums["playlist_track"].Rows-1, after["playlist_track"].Rows)
	assert.NotEqual(t, sums["playlist_track"].MD5, after["playlist_track"].MD5, "a deleted row changes the checksum")
	assert.Equal(t, sums["track"], after["public.track"], "other tables keep theirs")
}

// Each migration flavour recreates exactly the foreign keys Chinook ships
// with: same names, definitions and pg_dump text.
func TestChinookMigrationsRecreateTheForeignKeys(t *testing.T) {
	db := pgtest.New(t)
	pgtest.LoadChinook(t, db)
	fks, dump := pgtest.ChinookForeignKeys(t, db), pgtest.DumpForeignKeySQL(t, db)
	sums := pgtest.TableChecksums(t, db)
	for _, flavour := range []string{"prisma", "rails"} {
		t.Run(flavour, func(t *testing.T) {
			pgtest.DropForeignKeys(t, db)
			assert.Empty(t, pgtest.ChinookForeignKeys(t, db))
			assert.Empty(t, pgtest.DumpForeignKeySQL(t, db))

			db.Exec(t, pgtest.ChinookMigration(t, flavour))
			assert.Equal(t, fks, pgtest.ChinookForeignKeys(t, db))
			assert.Equal(t, dump, pgtest.DumpForeignKeySQL(t, db))
		})
	}
	assert.Equal(t, sums, pgtest.TableChecksums(t, db), "dropping and adding keys leaves the data alone")
}

// fatalRecorder stands in for a test to capture a Fatalf.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

func TestChinookPathNamesTheMissingFile(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo", "internal", "x")
	require.NoError(t, os.MkdirAll(repo, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "repo", "go.mod"), []byte("module x\n"), 0o644))
	t.Chdir(repo)

	rec := &fatalRecorder{TB: t}
	func() {
		defer func() {
			if r := recover(); r != rec {
				panic(r)
			}
		}()
		pgtest.ChinookPath(rec)
		t.Fatal("ChinookPath returned without the dataset")
	}()
	assert.Contains(t, rec.msg, filepath.Join(dir, "shared", "datasets", "chinook", "chinook.sql"))
}
