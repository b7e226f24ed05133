// Package buildinfo reads what the Go toolchain records in a binary (the
// module version and the VCS revision of the checkout it was built from),
// so bin/fkrollout and the worker report their version the same way.
package buildinfo

import "runtime/debug"

// Info is the version information of one binary.
type Info struct {
	// Module is the main module's version: "v1.2.3" for go install …@v1.2.3,
	// "(devel)" or "" for a build in a checkout.
	Module string
	// Revision is the VCS revision, shortened to 12 characters; "" when the
	// build recorded none.
	Revision string
	// Modified: the checkout had uncommitted changes.
	Modified bool
}

// Read returns the running binary's Info; ok is false when the binary
// carries no build information.
func Read() (info Info, ok bool) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{}, false
	}
	return FromBuildInfo(bi), true
}

// FromBuildInfo extracts Info from what debug.ReadBuildInfo returned.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Module: bi.Main.Version}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if len(info.Revision) > 12 {
		info.Revision = info.Revision[:12]
	}
	return info
}
