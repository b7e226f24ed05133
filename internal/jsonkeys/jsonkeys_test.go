package jsonkeys

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

type window struct {
	Start    string `json:"start"`
	Duration string `json:"duration"`
}

type env struct {
	Name   string  `json:"name"`
	Window *window `json:"maintenance_window,omitempty"`
}

type rule struct {
	Approvers []string `json:"approvers,omitempty"`
}

type base struct {
	ID string `json:"id"`
}

// custom decodes itself: its keys are its own business.
type custom struct{ raw string }

func (c *custom) UnmarshalJSON(b []byte) error { c.raw = string(b); return nil }

type input struct {
	base
	Plan   string          `json:"plan"`
	DryRun bool            `json:"dry_run,omitempty"`
	Envs   []env           `json:"environments"`
	Gates  map[string]rule `json:"gates,omitempty"`
	Extra  custom          `json:"extra"`
	Raw    json.RawMessage `json:"raw"`
	Free   any             `json:"free"`
	Skip   string          `json:"-"`
	When   time.Time       `json:"when"`
	NoTag  int
	hidden int
}

func TestUnknown(t *testing.T) {
	typ := reflect.TypeFor[input]()
	cases := []struct {
		name string
		doc  string
		want []string
	}{
		{"all known", `{"id":"x","plan":"p","dry_run":true,"environments":[{"name":"s","maintenance_window":{"start":"02:00","duration":"2h"}}],"gates":{"promotion":{"approvers":["a"]}},"NoTag":1}`, nil},
		{"misspelled top-level keys", `{"plan":"p","dryrun":true,"aproval":{}}`, []string{`aproval`, `dryrun (did you mean "dry_run"?)`}},
		{"case-insensitive match is known (encoding/json takes it)", `{"PLAN":"p","Dry_Run":true,"notag":2}`, nil},
		{"nested in a slice", `{"environments":[{"name":"a"},{"name":"b","maintenance_window":{"strat":"02:00"}}]}`, []string{`environments[1].maintenance_window.strat (did you mean "start"?)`}},
		{"map values", `{"gates":{"promotion":{"approver":["a"]}}}`, []string{`gates.promotion.approver (did you mean "approvers"?)`}},
		{"custom decoder, raw and any are not looked into", `{"extra":{"x":1},"raw":{"y":2},"free":{"z":3},"when":"2026-01-01T00:00:00Z"}`, nil},
		{"a dash field and an unexported one are unknown keys", `{"Skip":"s","hidden":1}`, []string{"Skip", "hidden"}},
		{"not JSON", `{`, nil},
		{"wrong shapes are decoding's business", `{"environments":{"name":"a"},"gates":[1]}`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, k := range Unknown([]byte(c.doc), typ) {
				got = append(got, k.String())
			}
			assert.Equal(t, c.want, got)
		})
	}
}
