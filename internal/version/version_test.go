package version

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestOf(t *testing.T) {
	assert.Equal(t, "v1.4.0", Of("v1.4.0"), "a stamped version wins")
	assert.NotEmpty(t, Of(""), "unstamped builds still name themselves")
	assert.NotEqual(t, "unknown", Of(""), "tests run with build info")
}
