package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// exactArgs accepts exactly the named positional arguments; a wrong count
// is a usage error (exit 2) naming what the command takes.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return usageError{msg: fmt.Sprintf("%s takes no arguments, got %q", cmd.Name(), strings.Join(args, " "))}
		}
		return usageError{msg: fmt.Sprintf("%s takes %d argument(s), %s; got %d", cmd.Name(), len(names), strings.Join(names, " "), len(args))}
	}
}

// positive refuses a duration flag that was given and is not above zero.
func positive(cmd *cobra.Command, name string, d time.Duration) error {
	if cmd.Flags().Changed(name) && d <= 0 {
		return usageError{msg: fmt.Sprintf("--%s must be a positive duration, got %s", name, d)}
	}
	return nil
}

// durationText writes a duration the way people type it ("24h", "1m30s",
// not "24h0m0s"), for workflow input that keeps durations as text.
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
