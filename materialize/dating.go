package materialize

import (
	"sort"
	"time"
)

// instant is a moment at which an audience's condition can change for a
// customer: a message of one of its inputs became visible (message set), an
// occurrence left a window, or the customer's history began (message "").
type instant struct {
	t       uint64
	message string
}

// customerInputs are the times of one customer's inputs, as the evaluator
// reads them for dating.
type customerInputs struct {
	firstMs uint64
	// attrs: per attribute, the event time, visible time and message of
	// every value sent.
	attrs map[string][]occurrenceTimes
	// occs: per signal, each occurrence's event time, visible time and message.
	occs map[string][]occurrenceTimes
	// links: when each linked anonymous id started to count, with the
	// linking identify.
	links []instant
}

type occurrenceTimes struct {
	eventMs, visibleMs uint64
	message            string
}

// instants returns the moments up to until at which c's condition can
// change for a customer with inputs in, latest first; several messages at
// one moment are represented by the greatest message id, the tie-break
// attributes use. The condition's value is constant between two of them: an
// attribute changes only when a message becomes visible, a count only when
// an occurrence becomes visible or leaves its window, so evaluating at each
// finds every change.
func (c *Compiled) instants(in *customerInputs, until uint64) []instant {
	best := map[uint64]string{}
	add := func(t uint64, msg string) {
		if t == 0 || t > until {
			return
		}
		if have, ok := best[t]; !ok || msg > have {
			best[t] = msg
		}
	}
	add(until, "")
	add(in.firstMs, "")
	for _, l := range in.links {
		add(l.t, l.message)
	}
	// A message of a linked anonymous id becomes visible at the link,
	// which the linking identify explains, not the message itself.
	visible := func(o occurrenceTimes) {
		if o.visibleMs == o.eventMs {
			add(o.visibleMs, o.message)
		} else {
			add(o.visibleMs, "")
		}
	}
	for _, a := range c.Attributes {
		for _, v := range in.attrs[a] {
			visible(v)
		}
	}
	windows := map[string][]time.Duration{}
	for _, f := range c.Features {
		windows[f.Signal.ID] = append(windows[f.Signal.ID], f.Window)
	}
	for id, ws := range windows {
		for _, o := range in.occs[id] {
			visible(o)
			for _, w := range ws {
				if w > 0 {
					if end := o.eventMs + uint64(w/time.Millisecond); end > o.visibleMs {
						add(end, "")
					}
				}
			}
		}
	}
	out := make([]instant, 0, len(best))
	for t, m := range best {
		out = append(out, instant{t, m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].t > out[j].t })
	return out
}

// becameAt finds when a condition took the value it has at the latest
// instant and kept it since: the earliest instant of the final run of equal
// values. at lists instants latest first and holds their values; complete
// says at reaches back to the customer's first instant. It returns ok false
// when every instant given holds the final value and earlier ones exist:
// the run may start before them.
func becameAt(at []instant, holds []bool, complete bool) (since instant, ok bool) {
	if len(at) == 0 {
		return instant{}, complete
	}
	want := holds[0]
	for i := 1; i < len(at); i++ {
		if holds[i] != want {
			return at[i-1], true
		}
	}
	return at[len(at)-1], complete
}
