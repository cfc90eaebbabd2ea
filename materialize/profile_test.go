package materialize

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestProfilesOfMatchesTheView: ProfilesOf returns the rows that filtering
// the customer_profile view returns, on random customers whose anonymous
// ids are claimed by one or two users (the earliest claim wins), by
// identify and by alias, with traits set, changed, unset and set once
// before and after the link, for sets of ids mixing users, linked and
// unlinked anonymous ids, and ids nobody used.
func TestProfilesOfMatchesTheView(t *testing.T) {
	conn := testenv.ClickHouse(t)
	applyDirs(t, conn, AttributeSettings{Declared: []string{"email", "plan", "country"}, SetOnce: []string{"first_source"}}, "audiences")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(uint64(seed), 7))

	const users, anons = 40, 60
	base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Millisecond)
	var evs []*ingest.Event
	msg := 0
	at := func() time.Time { return base.Add(time.Duration(r.IntN(47*3600)) * time.Second) }
	next := func() string { msg++; return fmt.Sprintf("m-%d", msg) }
	traits := func() map[string]any {
		m := map[string]any{}
		for _, k := range []string{"email", "plan", "country", "first_source"} {
			switch r.IntN(4) {
			case 0:
				m[k] = fmt.Sprintf("%s-%d", k, r.IntN(5))
			case 1:
				m[k] = nil
			}
		}
		return m
	}
	user := func() string { return fmt.Sprintf("u%d", r.IntN(users)) }
	anon := func() string { return fmt.Sprintf("a%d", r.IntN(anons)) }
	for range 400 {
		switch r.IntN(6) {
		case 0: // an identify linking an anonymous id to a user
			evs = append(evs, &ingest.Event{MessageID: next(), Type: "identify", UserID: user(), AnonymousID: anon(), Traits: obj(t, traits()), Timestamp: at()})
		case 1: // an alias
			evs = append(evs, &ingest.Event{MessageID: next(), Type: "alias", UserID: user(), PreviousID: anon(), Timestamp: at()})
		case 2: // an anonymous identify
			evs = append(evs, &ingest.Event{MessageID: next(), Type: "identify", AnonymousID: anon(), Traits: obj(t, traits()), Timestamp: at()})
		case 3: // a user's identify
			evs = append(evs, &ingest.Event{MessageID: next(), Type: "identify", UserID: user(), Traits: obj(t, traits()), Timestamp: at()})
		default: // tracks, by users and by anonymous ids
			ev := &ingest.Event{MessageID: next(), Type: "track", Event: "page_view", Timestamp: at()}
			if r.IntN(2) == 0 {
				ev.UserID = user()
			} else {
				ev.AnonymousID = anon()
			}
			evs = append(evs, ev)
		}
	}
	// Several inserts, so the states merge across parts as they do live.
	for len(evs) > 0 {
		n := min(len(evs), 1+r.IntN(100))
		insertDirect(t, conn, "web", evs[:n]...)
		evs = evs[n:]
	}

	ctx := context.Background()
	var sawLinked, sawAttrs, sawRows int
	for round := range 20 {
		var ids []string
		for range 1 + r.IntN(30) {
			switch r.IntN(3) {
			case 0:
				ids = append(ids, user())
			case 1:
				ids = append(ids, "anon:"+anon())
			default:
				ids = append(ids, fmt.Sprintf("nobody%d", r.IntN(5)))
			}
		}
		set := make([]any, len(ids))
		for i, id := range ids {
			set[i] = id
		}
		want := profileRows(t, conn, `SELECT * FROM customer_profile WHERE customer_id IN ?`, clickhouse.GroupSet{Value: set})
		args, err := ProfileArgs(ctx, conn, ids)
		if err != nil {
			t.Fatal(err)
		}
		got := profileRows(t, conn, ProfilesOf, args...)
		if !slices.Equal(got, want) {
			t.Fatalf("round %d, ids %v:\nview:\n%v\nProfilesOf:\n%v", round, ids, want, got)
		}
		sawRows += len(want)
		var linked, attrs uint64
		if err := conn.QueryRow(ctx, `SELECT countIf(notEmpty(anonymous_ids)), countIf(notEmpty(attribute_names)) FROM customer_profile WHERE customer_id IN ?`,
			clickhouse.GroupSet{Value: set}).Scan(&linked, &attrs); err != nil {
			t.Fatal(err)
		}
		sawLinked += int(linked)
		sawAttrs += int(attrs)
	}
	// The comparison proves something only if the profiles compared had
	// linked anonymous ids and attributes.
	if sawRows == 0 || sawLinked == 0 || sawAttrs == 0 {
		t.Fatalf("compared %d profiles, %d with linked anonymous ids, %d with attributes: the data set does not exercise the read", sawRows, sawLinked, sawAttrs)
	}
	t.Logf("compared %d profiles, %d with linked anonymous ids, %d with attributes", sawRows, sawLinked, sawAttrs)
}

// profileRows reads q's rows as text, the anonymous ids sorted (their
// order is the server's), rows sorted.
func profileRows(t *testing.T, conn *chdb.Conn, q string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out []string
	for rows.Next() {
		dest := make([]any, len(types))
		for i, c := range types {
			dest[i] = reflect.New(c.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(dest))
		for i := range dest {
			vals[i] = reflect.ValueOf(dest[i]).Elem().Interface()
			if s, ok := vals[i].([]string); ok && rows.Columns()[i] == "anonymous_ids" {
				vals[i] = slices.Sorted(slices.Values(s))
			}
		}
		out = append(out, fmt.Sprint(rows.Columns(), vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
