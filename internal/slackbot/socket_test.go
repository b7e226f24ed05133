package slackbot

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/fkrollout/fkrollout/workflows/approval"
	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSocketModeUsesTheSameHandling runs the real socketmode client against a
// local apps.connections.open + WebSocket endpoint speaking Slack's Socket
// Mode envelope protocol: a button click and a slash command arrive as
// envelopes, are acked by envelope_id, and go through the same core as HTTP.
func TestSocketModeUsesTheSameHandling(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.SocketMode, c.AppToken, c.SigningSecret = true, "xapp-1-test", ""
	})
	f.dec.status["fkr-demo-1"] = "*fkr-demo-1*: production · monitor"
	msg, raw := postGate(t, f, promotionEvent(MessageRef{}))
	approve := buttons(mustBlocks(t, raw))[actionPrefix+approval.ChoiceApprove]

	clickJSON, err := json.Marshal(click("U0BOB", msg, raw, approve, f.rec.responseURL("sock-click")))
	require.NoError(t, err)
	slashJSON, err := json.Marshal(map[string]any{
		"command": "/fkrollout", "text": "status fkr-demo-1", "user_id": "U0BOB",
		"channel_id": testChannel, "response_url": f.rec.responseURL("sock-slash"),
	})
	require.NoError(t, err)

	acks := make(chan map[string]any, 8)
	f.rec.ws = func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}).Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		defer conn.Close()
		for _, m := range []any{
			map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A0APP"}},
			map[string]any{"type": "interactive", "envelope_id": "env-click", "payload": json.RawMessage(clickJSON), "accepts_response_payload": false},
			map[string]any{"type": "slash_commands", "envelope_id": "env-slash", "payload": json.RawMessage(slashJSON), "accepts_response_payload": true},
		} {
			if err := conn.WriteJSON(m); err != nil {
				return
			}
		}
		for {
			var ack map[string]any
			if err := conn.ReadJSON(&ack); err != nil {
				return
			}
			acks <- ack
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- f.bot.Run(ctx) }()

	got := map[string]map[string]any{}
	for len(got) < 2 {
		select {
		case a := <-acks:
			got[a["envelope_id"].(string)] = a
		case <-time.After(10 * time.Second):
			t.Fatalf("acks received: %v", got)
		}
	}
	require.Contains(t, got, "env-click")
	require.Contains(t, got, "env-slash")
	slashAck, _ := got["env-slash"]["payload"].(map[string]any)
	assert.Contains(t, slashAck["text"], "Looking up rollout `fkr-demo-1`")

	responses := map[string]string{}
	for i := 0; i < 2; i++ {
		r := waitResponse(t, f.rec)
		responses[r.JSON["text"].(string)] = r.JSON["response_type"].(string)
	}
	assert.Contains(t, responses, "*fkr-demo-1*: production · monitor")
	f.bot.Interactions.Wait()

	ds := f.dec.decisions()
	require.Len(t, ds, 1)
	assert.Equal(t, UpdateID("promotion-production", "U0BOB", approval.ChoiceApprove), ds[0].UpdateID)
	assert.Equal(t, "bob@example.com", ds[0].Actor)
	updates := f.rec.byMethod("chat.update")
	require.Len(t, updates, 1)
	assert.Empty(t, buttons(blocksOf(t, updates[0])))
	assert.Len(t, f.rec.byMethod("apps.connections.open"), 1)

	cancel()
	select {
	case err := <-errc:
		assert.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("socket mode did not stop on cancel")
	}
}
