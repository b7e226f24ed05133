package slacktest

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

// Blocks decodes the "blocks" field of a recorded chat.postMessage or
// chat.update with slack-go's own decoder, as Slack would read it.
func Blocks(t testing.TB, c Call) slack.Blocks {
	t.Helper()
	raw := c.Form.Get("blocks")
	if raw == "" {
		t.Fatalf("slacktest: %s call has no blocks", c.Method)
	}
	var b slack.Blocks
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		t.Fatalf("slacktest: decode blocks of %s: %v", c.Method, err)
	}
	return b
}

// Buttons returns the buttons of the actions blocks by action_id.
func Buttons(b slack.Blocks) map[string]*slack.ButtonBlockElement {
	out := map[string]*slack.ButtonBlockElement{}
	for _, block := range b.BlockSet {
		actions, ok := block.(*slack.ActionBlock)
		if !ok || actions.Elements == nil {
			continue
		}
		for _, el := range actions.Elements.ElementSet {
			if btn, ok := el.(*slack.ButtonBlockElement); ok {
				out[btn.ActionID] = btn
			}
		}
	}
	return out
}

// Text is every text (mrkdwn or plain) of the blocks, one a line: an
// object's own text before the texts nested in it, keys in sorted order.
func Text(t testing.TB, b slack.Blocks) string {
	t.Helper()
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatalf("slacktest: encode blocks: %v", err)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("slacktest: decode blocks: %v", err)
	}
	var sb strings.Builder
	writeTexts(&sb, generic)
	return sb.String()
}

func writeTexts(sb *strings.Builder, v any) {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["text"].(string); ok {
			sb.WriteString(s + "\n")
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if _, isText := x[k].(string); k == "text" && isText {
				continue
			}
			writeTexts(sb, x[k])
		}
	case []any:
		for _, item := range x {
			writeTexts(sb, item)
		}
	}
}
