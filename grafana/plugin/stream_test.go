package plugin

import (
	"fmt"
	"testing"

	"github.com/tideline-dev/tideline/grafana/frames"
)

func q(derived uint64, customer string) frames.Qualification {
	return frames.Qualification{DerivedAtMs: derived, AudienceID: "a", CustomerID: customer, Episode: 1, Kind: "entered"}
}

func customers(qs []frames.Qualification) string {
	var out []string
	for _, q := range qs {
		out = append(out, q.CustomerID)
	}
	return fmt.Sprint(out)
}

func TestLiveCursor(t *testing.T) {
	const start = 1_000_000
	l := newLiveCursor(start)
	if l.from() != start-5000 {
		t.Fatalf("first poll from %d, want the overlap before the start", l.from())
	}
	// Rows derived before the stream started are history: not sent.
	got := l.take([]frames.Qualification{q(start-10, "old"), q(start+10, "c1")}, 100)
	if customers(got) != "[c1]" {
		t.Fatalf("got %s", customers(got))
	}
	// The next poll re-reads the overlap: c1 is not sent twice, a row that
	// landed late inside the overlap is.
	got = l.take([]frames.Qualification{q(start-10, "old"), q(start+5, "late"), q(start+10, "c1"), q(start+20, "c2")}, 100)
	if customers(got) != "[late c2]" {
		t.Fatalf("got %s", customers(got))
	}
	if l.from() != start+20-5000 {
		t.Fatalf("cursor %d", l.from())
	}
	// A full poll reads forward from the cursor, without the overlap.
	full := []frames.Qualification{q(start+30, "f1"), q(start+40, "f2")}
	l.take(full, 2)
	if l.from() != start+40 {
		t.Fatalf("after a full poll, from %d, want the cursor %d", l.from(), start+40)
	}
	// A full poll of one millisecond steps past it.
	l.take([]frames.Qualification{q(start+50, "s1"), q(start+50, "s2")}, 2)
	if l.from() != start+51 {
		t.Fatalf("stuck on one millisecond: from %d", l.from())
	}
	// Keys older than the overlap are forgotten.
	l.take([]frames.Qualification{q(start+100_000, "far")}, 100)
	if len(l.seen) != 1 {
		t.Fatalf("seen holds %d keys, want only the recent one", len(l.seen))
	}
}
