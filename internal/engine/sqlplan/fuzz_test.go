package sqlplan

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
	sqlassets "github.com/fkrollout/fkrollout/sql"
)

func FuzzParseSQL(f *testing.F) {
	f.Add(sqlassets.Migration)
	for _, name := range []string{"demo_generated.golden", "chinook_fks.sql"} {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(string(b))
		}
	}
	f.Add(`ALTER TABLE "a""b".c ADD CONSTRAINT "x;y" FOREIGN KEY (a, b) REFERENCES d(e, f) MATCH FULL ON DELETE SET NULL NOT VALID; BEGIN; ALTER TABLE c VALIDATE CONSTRAINT x; COMMIT;`)
	f.Add("-- Priority 2: HIGH\n-- c\nALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (x) REFERENCES b(id);")
	f.Add("-- fkrollout:lint missing-validate=off\nALTER TABLE ONLY a ADD FOREIGN KEY (x, y) REFERENCES b;\nCREATE TABLE c (d int REFERENCES e ON DELETE CASCADE, FOREIGN KEY (d) REFERENCES f (g));")
	f.Add("\\restrict k\nCOPY t (a) FROM stdin;\n1\n\\.\nALTER TABLE t ADD COLUMN z int REFERENCES u, ADD CONSTRAINT v FOREIGN KEY (a) REFERENCES u (id) DEFERRABLE INITIALLY DEFERRED;")
	f.Fuzz(func(t *testing.T, sql string) {
		src, err := ParseSQLDetailed(sql)
		_ = LintSQL(sql)
		if err != nil {
			return
		}
		// Whatever parses must render and parse back to the same plan when
		// it is lint-clean enough to be rolled out.
		if plan.Validate(src.Plan) != nil {
			return
		}
		_, content := plan.Generate(src.Plan, "fuzz", fixedNow)
		back, err := ParseSQL(string(content))
		if err != nil {
			t.Fatalf("generated SQL does not parse: %v\n%s", err, content)
		}
		want := src.Plan.Sorted()
		if len(back.ForeignKeys) != len(want) {
			t.Fatalf("round trip: %d FKs, want %d", len(back.ForeignKeys), len(want))
		}
		for i := range want {
			if back.ForeignKeys[i].ID() != want[i].ID() || back.ForeignKeys[i].AddSQL(true) != want[i].AddSQL(true) {
				t.Fatalf("round trip FK %d:\n got %s\nwant %s", i, back.ForeignKeys[i].AddSQL(true), want[i].AddSQL(true))
			}
		}
	})
}

func FuzzParseYAML(f *testing.F) {
	p, err := ParseSQL(sqlassets.Migration)
	if err != nil {
		f.Fatal(err)
	}
	y, _ := plan.EncodeYAML(p)
	f.Add(y)
	f.Add([]byte(`{"foreign_keys":[{"name":"f","table":{"schema":"S","name":"T"},"columns":["x"],"references":"\"a\"\"b\".c","ref_columns":["id"],"priority":1}]}`))
	f.Add([]byte("foreign_keys:\n  - name: f\n    table: t\n    columns: [x]\n    references: u\n    ref_columns: [id]\n    on_delete: set_null\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := plan.ParseYAML(data)
		if err != nil {
			return
		}
		_ = plan.Lint(p)
		y, err := plan.EncodeYAML(p)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		if _, err := plan.ParseYAML(y); err != nil {
			t.Fatalf("re-parse of encoded plan: %v\n%s", err, y)
		}
	})
}
