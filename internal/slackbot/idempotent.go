package slackbot

import (
	"context"
	"fmt"
	"sync"

	"github.com/slack-go/slack"
	"go.temporal.io/sdk/activity"
)

// Posting is idempotent: every message carries a key in its Slack metadata
// (the workflow run and the activity that posts it, plus the part of a
// multi-part post), and a retried activity first looks for a message with
// its key: in the notifier's own record of what it posted, then in the
// channel or thread (conversations.history/replies). A post Slack carried
// out whose answer never arrived (a timeout) is found instead of posted
// twice.

// metadataEventType marks fkrollout's messages in Slack's message metadata.
const metadataEventType = "fkrollout_event"

// postedRecordSize bounds the notifier's record of keys it posted.
const postedRecordSize = 2048

// lookupLimit is how many recent messages a retry searches for its key.
const lookupLimit = 200

// postKey is the idempotency key of a post made from an activity, and
// whether this is a retry (an earlier attempt may have posted it). Outside
// an activity there is no key: the post is made as asked.
func postKey(ctx context.Context, part int) (key string, retry bool) {
	if !activity.IsActivity(ctx) {
		return "", false
	}
	info := activity.GetInfo(ctx)
	return fmt.Sprintf("%s/%s/%d", info.WorkflowExecution.RunID, info.ActivityID, part), info.Attempt > 1
}

// postedRecord remembers the messages this notifier posted, by key.
type postedRecord struct {
	mu    sync.Mutex
	byKey map[string]PostResult
	order []string
}

func (p *postedRecord) get(key string) (PostResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r, ok := p.byKey[key]
	return r, ok
}

func (p *postedRecord) put(key string, r PostResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byKey == nil {
		p.byKey = map[string]PostResult{}
	}
	if _, ok := p.byKey[key]; !ok {
		p.order = append(p.order, key)
	}
	p.byKey[key] = r
	if len(p.order) > postedRecordSize {
		delete(p.byKey, p.order[0])
		p.order = p.order[1:]
	}
}

// postOnce posts to channel (in thread when set) unless a message with
// this activity's key for part is already there.
func (n *Notifier) postOnce(ctx context.Context, channel, thread string, part int, opts []slack.MsgOption) (PostResult, error) {
	key, retry := postKey(ctx, part)
	if key != "" {
		if r, ok := n.posted.get(key); ok {
			return r, nil
		}
		if retry {
			if r, ok := n.findPosted(ctx, channel, thread, key); ok {
				n.posted.put(key, r)
				return r, nil
			}
		}
		opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metadataEventType, EventPayload: map[string]any{"key": key}}))
	}
	var res PostResult
	err := n.call(ctx, "chat.postMessage", func(ctx context.Context) error {
		ch, ts, err := n.api.PostMessageContext(ctx, channel, opts...)
		res = PostResult{Channel: ch, TS: ts}
		return err
	})
	if err != nil {
		return PostResult{}, err
	}
	if key != "" {
		n.posted.put(key, res)
	}
	return res, nil
}

// findPosted looks for the message carrying key among the recent messages
// of the thread (or the channel). A failed lookup is logged and treated as
// not found: a duplicate is better than a lost notification.
func (n *Notifier) findPosted(ctx context.Context, channel, thread, key string) (PostResult, bool) {
	var msgs []slack.Message
	var err error
	if thread != "" {
		msgs, _, _, err = n.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{
			ChannelID: channel, Timestamp: thread, Limit: lookupLimit, IncludeAllMetadata: true})
	} else {
		var h *slack.GetConversationHistoryResponse
		h, err = n.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{
			ChannelID: channel, Limit: lookupLimit, IncludeAllMetadata: true})
		if h != nil {
			msgs = h.Messages
		}
	}
	if err != nil {
		n.log.WarnContext(ctx, "slack: look for an earlier attempt's post", "key", key, "err", err)
		return PostResult{}, false
	}
	for _, m := range msgs {
		if m.Metadata.EventType == metadataEventType && m.Metadata.EventPayload["key"] == key {
			return PostResult{Channel: channel, TS: m.Timestamp}, true
		}
	}
	return PostResult{}, false
}
