//go:build linux

package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fkrollout/fkrollout/workflows/rollout"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair and returns its terminal end, sized
// cols wide, and the controlling end that reads what was written to it: a
// real terminal for the live display without a person at it.
func openPTY(t *testing.T, cols uint16) (*os.File, *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	require.NoError(t, err)
	t.Cleanup(func() { ptmx.Close() })
	fd := int(ptmx.Fd())
	require.NoError(t, unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0), "unlockpt")
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	require.NoError(t, err, "ptsname")
	pts, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { pts.Close() })
	require.NoError(t, unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}))
	return pts, ptmx
}

// readAll reads what the terminal end has written until it goes quiet.
// It polls the descriptor: read deadlines do not work on /dev/ptmx.
func readAll(t *testing.T, ptmx *os.File) string {
	t.Helper()
	fd := int(ptmx.Fd())
	var b strings.Builder
	buf := make([]byte, 64<<10)
	wait := 2000 // ms for the first bytes, then until 200 ms of quiet
	for {
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, wait)
		if err == unix.EINTR {
			continue
		}
		require.NoError(t, err)
		if n == 0 {
			require.NotZero(t, b.Len(), "nothing drawn")
			return b.String()
		}
		m, err := unix.Read(fd, buf)
		require.NoError(t, err)
		b.Write(buf[:m])
		wait = 200
	}
}

// On a terminal, auto means live, and the display is as wide as the
// terminal says, not a fixed width: no drawn line is wider, so a redraw
// never wraps.
func TestLiveDisplayOnATerminal(t *testing.T) {
	t.Setenv("TERM", "xterm")
	for _, cols := range []int{60, 132} {
		pts, ptmx := openPTY(t, uint16(cols))
		live, err := progressMode("auto", pts)
		require.NoError(t, err)
		assert.True(t, live)
		assert.Equal(t, cols, termWidth(pts))

		f := &follower{id: "r1", out: pts, live: true, ui: "http://ui.test/" + strings.Repeat("x", 200)}
		st := &rollout.Status{State: rollout.StateRunning, Phase: "validate", EnvironmentOrder: []string{"staging"},
			Timeline: []rollout.TimelineEntry{{Time: time.Now(), Environment: "staging", Message: strings.Repeat("long message ", 30)}}}
		f.draw(st, time.Second)
		lines := strings.Split(strings.ReplaceAll(readAll(t, ptmx), "\r\n", "\n"), "\n")
		require.Greater(t, len(lines), 3)
		widest := 0
		for _, l := range lines {
			widest = max(widest, utf8.RuneCountInString(l))
		}
		assert.Equal(t, cols, widest, "the longest lines are cut at the terminal's width")
	}
	t.Setenv("TERM", "dumb")
	pts, _ := openPTY(t, 80)
	live, err := progressMode("auto", pts)
	require.NoError(t, err)
	assert.False(t, live, "TERM=dumb turns the live display off")
}
