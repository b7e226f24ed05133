// Package slackbot lets approvers follow and decide fkrollout gates from Slack.
//
// One thread per rollout: Notifier.Post posts the thread parent for the
// "started" event and returns its MessageRef, which the workflow keeps and
// passes back in every later event (the notifier holds no state, so any
// worker can post any event after a restart). Gate messages carry Block Kit
// buttons; the workflow keeps their MessageRef too, so a decision taken from
// the CLI or UI also removes the buttons (KindGateDecided).
//
// Clicks arrive over HTTP (Handler: v0 signature verified on every request,
// 401 otherwise) or Socket Mode (RunSocketMode), and both go through
// Interactions: ack at once, then the decision is sent through a Decider
// (TemporalDecider: the gate Update with a stable update ID per gate, user and
// choice), the clicker is told the outcome via response_url (ephemeral), and
// the gate message is updated in place. The workflow's Update validator is the
// authority on who may decide; this package only maps Slack users to
// approver identities (Config.Users) and roles (Config.ApproverGroups).
//
// Slack app setup: bot scopes chat:write, commands, usergroups:read;
// Interactivity Request URL and the /fkrollout slash command URL both point
// at the Handler (HTTP mode), or enable Socket Mode with an app-level token
// (connections:write) and set socket_mode: true.
package slackbot
