// Package slackbot lets approvers follow and decide fkrollout gates from Slack.
//
// One thread per rollout: Notifier.Post posts the thread parent for the
// "started" event and returns its MessageRef, which the workflow keeps and
// passes back in every later event (the notifier holds no state, so any
// worker can post any event after a restart). Gate messages carry Block Kit
// buttons; the workflow keeps their MessageRef too, so a decision taken from
// the CLI or UI also removes the buttons (KindGateDecided). Every plan name,
// id, reason, actor, table name and event text is escaped for mrkdwn
// (internal/mdtext) before it is posted, so none of it can mention, broadcast
// or link; a decision's slack_user becomes a mention only when it is a real
// Slack user ID.
//
// Clicks arrive over HTTP (Handler) or Socket Mode (RunSocketMode), and both
// go through Interactions: ack at once, then the decision is sent through a
// Decider, the clicker is told the outcome via response_url (ephemeral), and
// the gate message is updated in place.
//
// Who decides: only a Slack user mapped to an fkrollout identity in
// Config.Users. A click by anyone else is answered "not mapped" and nothing
// is sent to Temporal. Roles come only from Config.ApproverGroups (the Slack
// user groups the user is in). The worker's Decider (TemporalDecider with its
// Prepare hook) signs each decision as the Slack signer (Config.Signer, a key
// derived from the signing secret or, in Socket Mode, the app token) for the
// rollout's current run, and sends the gate Update with a stable update ID
// per gate, user and choice, so double clicks decide once. The workflow's
// validator checks the signature against the signer's public key in the
// rollout's policy, then applies the policy to that actor and those roles: it
// is the authority on who may decide.
//
// The HTTP endpoint refuses, with a log line and a Handler.Rejected report
// each: anything but POST; a client address or Slack user over its rate
// (Config.RateLimit, 429); a body over 1 MiB (413); a missing or wrong v0
// signature or a timestamp more than 5 minutes off (401); a signature it has
// already seen within those 5 minutes, i.e. a replay (409). Its server has
// read, write and idle timeouts.
//
// Slack app setup: bot scopes chat:write, commands, usergroups:read;
// Interactivity Request URL and the /fkrollout slash command URL both point
// at the Handler (HTTP mode), or enable Socket Mode with an app-level token
// (connections:write) and set socket_mode: true.
package slackbot
