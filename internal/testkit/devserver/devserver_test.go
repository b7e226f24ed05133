package devserver

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"

	"github.com/fkrollout/fkrollout/workflows"
)

func TestStartRegistersSearchAttributes(t *testing.T) {
	srv := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := srv.Client().OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"})
	require.NoError(t, err)
	for _, name := range workflows.SearchAttributeNames {
		assert.Equal(t, enums.INDEXED_VALUE_TYPE_KEYWORD, resp.CustomAttributes[name], name)
	}
}
