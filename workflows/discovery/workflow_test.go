package discovery

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiscoverInputIsCheckedBeforeAnythingRuns(t *testing.T) {
	cases := []struct {
		in   Input
		want string
	}{
		{Input{}, "environment is required"},
		{Input{Environment: "staging", Threshold: 1.5}, "threshold 1.5"},
		{Input{Environment: "staging", Threshold: -0.1}, "threshold -0.1"},
		{Input{Environment: "staging", Schemas: []string{"public", " "}}, "schemas: an empty name"},
	}
	for _, c := range cases {
		err := c.in.validate()
		require.Error(t, err, "%+v", c.in)
		assert.Contains(t, err.Error(), c.want)
	}
	assert.NoError(t, Input{Environment: "staging", Threshold: 0.8, Schemas: []string{"public"}}.validate())
}
