package buildinfo_test

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fkrollout/fkrollout/internal/buildinfo"
)

func TestFromBuildInfo(t *testing.T) {
	for _, tc := range []struct {
		name     string
		version  string
		settings []debug.BuildSetting
		want     buildinfo.Info
	}{
		{"module version, no VCS", "v1.2.3", nil, buildinfo.Info{Module: "v1.2.3"}},
		{"checkout, clean", "(devel)",
			[]debug.BuildSetting{{Key: "vcs.revision", Value: "1a2b3c4d5e6f7a8b9c0d"}, {Key: "vcs.modified", Value: "false"}},
			buildinfo.Info{Module: "(devel)", Revision: "1a2b3c4d5e6f"}},
		{"checkout, modified, short revision", "",
			[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "abc"}},
			buildinfo.Info{Revision: "abc", Modified: true}},
		{"other settings ignored", "(devel)",
			[]debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "vcs", Value: "git"}},
			buildinfo.Info{Module: "(devel)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Version: tc.version}, Settings: tc.settings}
			assert.Equal(t, tc.want, buildinfo.FromBuildInfo(bi))
		})
	}
}

// A test binary carries build information: Read finds it.
func TestReadInTestBinary(t *testing.T) {
	_, ok := buildinfo.Read()
	assert.True(t, ok)
}
