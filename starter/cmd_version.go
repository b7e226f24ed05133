package main

import (
	"fmt"
	"runtime"

	buildinfo "github.com/fkrollout/fkrollout/internal/version"

	"github.com/spf13/cobra"
)

// buildVersion is set by the Makefile and Dockerfile:
// -ldflags "-X main.buildVersion=$(git describe --always --dirty)".
var buildVersion string

// version is buildVersion when the build set it, else what the Go
// toolchain recorded.
func version() string { return buildinfo.Of(buildVersion) }

func versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "print fkrollout's version (also --version)",
		Args:  exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"version": version(), "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s (%s, %s/%s)\n", programName, version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}
