package slackbot

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// Approver is who clicked, as the workflow's policy knows them.
type Approver struct {
	// Identity is the configured identity (Config.Users). A Slack user
	// without one is never resolved to an Approver: it cannot decide.
	Identity string `json:"identity"`
	// Roles are the configured names of the approver user groups the user
	// is in (Config.ApproverGroups); the only source of roles.
	Roles []string `json:"roles,omitempty"`
	// SlackUser is the Slack user ID.
	SlackUser string `json:"slack_user"`
}

// groupLister is the slice of the Slack API the directory needs.
type groupLister interface {
	GetUserGroupMembersContext(ctx context.Context, group string, opts ...slack.GetUserGroupMembersOption) ([]string, error)
}

// Directory maps Slack users to approver identities. Group membership comes
// from usergroups.users.list, cached per group for ttl so a burst of clicks
// costs one API call. It does not decide anything: the workflow's Update
// validator is the authority on who may approve.
type Directory struct {
	users  map[string]string
	groups map[string]string // group ID -> role
	api    groupLister
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu    sync.Mutex
	cache map[string]groupEntry
}

type groupEntry struct {
	members map[string]bool
	fetched time.Time
}

// NewDirectory builds a directory from cfg.
func NewDirectory(api groupLister, cfg Config, log *slog.Logger) (*Directory, error) {
	ttl, err := cfg.groupTTL()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	return &Directory{
		users: cfg.Users, groups: cfg.ApproverGroups, api: api, ttl: ttl,
		now: time.Now, log: log, cache: map[string]groupEntry{},
	}, nil
}

// Lookup returns the identity a Slack user is mapped to in Config.Users;
// false for an unmapped user (no API call).
func (d *Directory) Lookup(userID string) (string, bool) {
	id := d.users[userID]
	return id, id != ""
}

// Resolve maps a mapped Slack user to its identity and roles; false for an
// unmapped user, who never acts as anyone (no group is looked up for them).
// A group lookup failure is not fatal: the stale cache is used if there is
// one, otherwise that role is left out and the validator decides with what
// it has (usually: refused).
func (d *Directory) Resolve(ctx context.Context, userID string) (Approver, bool) {
	identity, ok := d.Lookup(userID)
	if !ok {
		return Approver{SlackUser: userID}, false
	}
	a := Approver{SlackUser: userID, Identity: identity}
	ids := make([]string, 0, len(d.groups))
	for id := range d.groups {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		members, err := d.members(ctx, id)
		if err != nil {
			d.log.WarnContext(ctx, "slack: resolve approver group", "group", id, "err", err)
			continue
		}
		if members[userID] && !slices.Contains(a.Roles, d.groups[id]) {
			a.Roles = append(a.Roles, d.groups[id])
		}
	}
	return a, true
}

func (d *Directory) members(ctx context.Context, group string) (map[string]bool, error) {
	d.mu.Lock()
	e, ok := d.cache[group]
	d.mu.Unlock()
	if ok && d.now().Sub(e.fetched) < d.ttl {
		return e.members, nil
	}
	ids, err := d.api.GetUserGroupMembersContext(ctx, group)
	if err != nil {
		if ok {
			return e.members, nil
		}
		return nil, fmt.Errorf("usergroups.users.list %s: %w", group, err)
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	d.mu.Lock()
	d.cache[group] = groupEntry{members: m, fetched: d.now()}
	d.mu.Unlock()
	return m, nil
}
