package main

import (
	"bytes"
	"os"
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
	assert.Equal(t, "[░░░░]", progressBar(0, 0, 4))
	assert.Equal(t, "[██░░]", progressBar(1, 2, 4))
	assert.Equal(t, "[████]", progressBar(3, 2, 4), "never wider than the bar")
	assert.Equal(t, "ab…", truncateRunes("abcdé", 3))
	assert.Equal(t, "abcdé", truncateRunes("abcdé", 5))
	_, err := (&followOptions{demo: true, interactive: true}).follower(nil, "x", &bytes.Buffer{}, "")
	assert.ErrorContains(t, err, "exclude each other")
}

// /dev/null is a character device but not a terminal: output redirected
// there (or to a pipe) gets timeline lines, not ANSI redraws.
func TestNotATerminal(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]*os.File{"/dev/null": devNull, "pipe": w} {
		live, err := progressMode("auto", out)
		assert.NoError(t, err)
		assert.False(t, live, name)
		assert.Equal(t, fallbackWidth, termWidth(out), name)
	}
}
