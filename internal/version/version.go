// Package version names the build of a program: the version the build
// stamped into it (go build -ldflags "-X main.version=…", as the Makefile
// and Dockerfile do), else what the Go toolchain recorded.
package version

import "runtime/debug"

// Of is stamped when the build set it, else the module version
// (go install …@v1.2.3) or the VCS revision of a build in a checkout
// ("1a2b3c4d5e6f-dirty"), else "devel".
func Of(stamped string) string {
	if stamped != "" {
		return stamped
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}
