package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/fkrollout/fkrollout/internal/buildinfo"
)

// buildVersion is set by the Makefile and Dockerfile:
// -ldflags "-X main.buildVersion=$(git describe --always --dirty)".
var buildVersion string

// version is buildVersion when the build set it, else what the Go
// toolchain recorded: the module version (go install …@v1.2.3) or the VCS
// revision of a build in a checkout.
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	info, ok := buildinfo.Read()
	if !ok {
		return "unknown"
	}
	if v := info.Module; v != "" && v != "(devel)" {
		return v
	}
	if info.Revision == "" {
		return "devel"
	}
	if info.Modified {
		return info.Revision + "-dirty"
	}
	return info.Revision
}

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
