package behave

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The definitions are what pg_get_constraintdef prints on PostgreSQL 15.
func TestParseAllowed(t *testing.T) {
	tests := []struct {
		def  string
		want map[string][]string
	}{
		{`CHECK ((status = ANY (ARRAY['A'::text, 'B'::text])))`, map[string][]string{"status": {"A", "B"}}},
		{`CHECK (((kind)::text = ANY ((ARRAY['open'::character varying, 'close'::character varying])::text[])))`, map[string][]string{"kind": {"open", "close"}}},
		{`CHECK (("Kind" = 'it''s'::text))`, map[string][]string{"Kind": {"it's"}}},
		{`CHECK ((level = ANY (ARRAY[1, 2, 3])))`, map[string][]string{"level": {"1", "2", "3"}}},
		{`CHECK ((feeling = ANY (ARRAY['calm'::mood])))`, map[string][]string{"feeling": {"calm"}}},
		{`CHECK (((length(code) = 37) AND (code ~ '^x'::text)))`, map[string][]string{}},
		{`CHECK ((qty > 0))`, map[string][]string{}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, parseAllowed(tc.def), tc.def)
	}
}
