package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestProgressHelpers(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		live    bool
		wantErr string
	}{
		{mode: "live", live: true},
		{mode: "lines"},
		{mode: "auto"}, // a buffer is not a terminal
		{mode: "fancy", wantErr: `--progress "fancy": want auto, live or lines`},
	} {
		live, err := progressMode(tc.mode, &bytes.Buffer{})
		if tc.wantErr != "" {
			assert.EqualError(t, err, tc.wantErr)
			continue
		}
		assert.NoError(t, err)
		assert.Equal(t, tc.live, live, tc.mode)
	}
	assert.Equal(t, "[░░░░]", bar(0, 0, 4))
	assert.Equal(t, "[██░░]", bar(1, 2, 4))
	assert.Equal(t, "[████]", bar(3, 2, 4), "never wider than the bar")
	assert.Equal(t, "ab…", truncateRunes("abcdé", 3))
	assert.Equal(t, "abcdé", truncateRunes("abcdé", 5))
	_, err := (&followOptions{demo: true, interactive: true}).follower(nil, "x", &bytes.Buffer{}, "")
	assert.ErrorContains(t, err, "exclude each other")
}
