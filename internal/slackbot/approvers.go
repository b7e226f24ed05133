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
	// Identity is the configured identity (users map), or "slack:<user id>"
	// for an unmapped user, so the workflow validator can refuse it by name.
	Identity string `json:"identity"`
	// Roles are the configured names of the approver user groups the user is in.
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

// Resolve maps a Slack user ID. A group lookup failure is not fatal: the
// stale cache is used if there is one, otherwise the roles are left out and
// the validator decides with what it has (usually: refused).
func (d *Directory) Resolve(ctx context.Context, userID string) Approver {
	a := Approver{SlackUser: userID, Identity: d.users[userID]}
	if a.Identity == "" {
		a.Identity = "slack:" + userID
	}
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
	return a
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
