package materialize

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// anonPrefix starts the customer id of events with no userId.
const anonPrefix = "anon:"

// resolution groups raw customer ids into customers: a user together with
// the anonymous ids an identify linked to it, or an anonymous id no identify
// linked (a customer of its own).
type resolution struct {
	// members lists each customer's raw ids, the customer's own id first.
	members map[string][]string
	// retired are linked anonymous ids: part of a user now, never members
	// themselves.
	retired map[string]bool
	// linked holds the winning link of every linked anonymous id: its
	// history counts for the user from the link's event time on.
	linked map[string]link
}

// link is the identify that linked an anonymous id to a user.
type link struct {
	user    string
	timeMs  uint64
	message string
}

// linkedMs is when raw id started to count for its customer: 0 for the
// customer's own id, the link's event time for a linked anonymous id.
func (r *resolution) linkedMs(id string) uint64 {
	if l, ok := r.linked[id]; ok && r.retired[id] {
		return l.timeMs
	}
	return 0
}

// customers returns the resolved customers, sorted.
func (r *resolution) customers() []string {
	out := make([]string, 0, len(r.members))
	for c := range r.members {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// withIDs runs fn with ctx carrying the external table ids(id).
func withIDs(ctx context.Context, ids []string) (context.Context, error) {
	t, err := chdb.IDTable("ids", ids)
	if err != nil {
		return nil, fmt.Errorf("external table of ids: %w", err)
	}
	return chdb.WithExternal(ctx, t), nil
}

// links returns the winning link of each linked anonymous id among anons.
func links(ctx context.Context, conn *chdb.Conn, anons []string) (map[string]link, error) {
	out := map[string]link{}
	if len(anons) == 0 {
		return out, nil
	}
	qctx, err := withIDs(ctx, anons)
	if err != nil {
		return nil, err
	}
	err = conn.Each(qctx, `SELECT anonymous_customer_id, l.1, l.2, l.3
FROM
(
    SELECT anonymous_customer_id, argMinMerge(link) AS l
    FROM identity_links WHERE anonymous_customer_id IN (SELECT id FROM ids)
    GROUP BY anonymous_customer_id
)`, nil, func(rows chdb.Rows) error {
		var anon string
		var l link
		if err := rows.Scan(&anon, &l.user, &l.timeMs, &l.message); err != nil {
			return err
		}
		out[anon] = l
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read identity links: %w", err)
	}
	return out, nil
}

// query2 runs a two-column string query over the ids external table.
func query2(ctx context.Context, conn *chdb.Conn, ids []string, q, what string) ([][2]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	qctx, err := withIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	err = conn.Each(qctx, q, nil, func(rows chdb.Rows) error {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		out = append(out, [2]string{a, b})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// resolve groups raw into customers. relinked are anonymous ids whose links
// may have changed in this pass (a linking identify touched them): every
// user that ever claimed them is resolved too, since a claim that lost to an
// earlier one takes the anonymous history away from that user.
func resolve(ctx context.Context, conn *chdb.Conn, raw []string, relinked []string) (*resolution, error) {
	rawSet := map[string]bool{}
	for _, id := range raw {
		rawSet[id] = true
	}
	claims, err := query2(ctx, conn, relinked, `SELECT user_id, anonymous_customer_id FROM identity_claims
WHERE anonymous_customer_id IN (SELECT id FROM ids) GROUP BY user_id, anonymous_customer_id`, "identity claims")
	if err != nil {
		return nil, err
	}
	for _, c := range claims {
		rawSet[c[0]] = true
	}
	var anons []string
	for id := range rawSet {
		if strings.HasPrefix(id, anonPrefix) {
			anons = append(anons, id)
		}
	}
	sort.Strings(anons)
	owner, err := links(ctx, conn, anons)
	if err != nil {
		return nil, err
	}
	res := &resolution{members: map[string][]string{}, retired: map[string]bool{}, linked: owner}
	customers := map[string]bool{}
	for id := range rawSet {
		if l, ok := owner[id]; ok && l.user != "" {
			res.retired[id] = true
			customers[l.user] = true
			continue
		}
		customers[id] = true
	}
	var users []string
	for c := range customers {
		if !strings.HasPrefix(c, anonPrefix) {
			users = append(users, c)
		}
	}
	sort.Strings(users)
	// A user's anonymous ids: every id it claimed whose winning claim is this user's.
	claimed, err := query2(ctx, conn, users, `SELECT user_id, anonymous_customer_id FROM identity_claims
WHERE user_id IN (SELECT id FROM ids) GROUP BY user_id, anonymous_customer_id`, "identity claims")
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, c := range claimed {
		if _, ok := owner[c[1]]; !ok {
			unknown = append(unknown, c[1])
		}
	}
	more, err := links(ctx, conn, unknown)
	if err != nil {
		return nil, err
	}
	for a, u := range more {
		owner[a] = u
	}
	for c := range customers {
		res.members[c] = []string{c}
	}
	for _, c := range claimed {
		user, anon := c[0], c[1]
		if owner[anon].user == user {
			res.members[user] = append(res.members[user], anon)
			res.retired[anon] = true
		}
	}
	for c := range res.members {
		if res.retired[c] {
			// An anonymous id that is itself a resolved customer can only
			// happen if a user id starts with "anon:"; keep it retired.
			delete(res.members, c)
		}
	}
	for _, ms := range res.members {
		sort.Strings(ms[1:])
	}
	return res, nil
}

// LinkedByClaims is one hop through the identity claims: the users that
// claimed any of anons, then the anonymous ids any of users claimed
// (duplicates possible). Ids are read 5000 at a time, so any number fits
// one call.
func LinkedByClaims(ctx context.Context, conn *chdb.Conn, anons, users []string) ([]string, error) {
	const chunk = 5000
	var out []string
	for _, q := range []struct {
		ids []string
		sql string
	}{
		{anons, "SELECT DISTINCT user_id FROM identity_claims WHERE anonymous_customer_id IN ?"},
		{users, "SELECT DISTINCT anonymous_customer_id FROM identity_claims WHERE user_id IN ?"},
	} {
		for i := 0; i < len(q.ids); i += chunk {
			set := clickhouse.GroupSet{}
			for _, id := range q.ids[i:min(i+chunk, len(q.ids))] {
				set.Value = append(set.Value, id)
			}
			ss, err := conn.Strings(ctx, q.sql, set)
			if err != nil {
				return nil, fmt.Errorf("read linked identities: %w", err)
			}
			out = append(out, ss...)
		}
	}
	return out, nil
}
