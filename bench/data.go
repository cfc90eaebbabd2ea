package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/workload"
)

// source yields the bench's event mix: the workload generator's messages
// (identifies and tracks on the web and server lanes, anonymous visitors who
// log in later) with generated properties added, as the Segment bodies a
// client would send. The same seed always yields the same bodies.
type source struct {
	gen   *workload.Generator
	rng   *rand.Rand
	extra int
}

// item is one generated message before the collector's parsing.
type item struct {
	lane       string
	body       []byte
	receivedAt time.Time
}

// receiveDelay is the simulated time between an event and its arrival at the
// collector; it only has to be positive and constant.
const receiveDelay = 40 * time.Millisecond

// eventStep is the event-time distance between consecutive generated
// events. It does not depend on how many are generated, so the ceiling's
// batches are the same rows as the first events produced to Kafka.
const eventStep = 100 * time.Microsecond

// newSource starts the mix's event times at start.
func newSource(c Config, start time.Time) *source {
	return &source{
		gen: workload.New(workload.Config{Customers: c.Customers, Seed: c.Seed, Start: start, Step: eventStep}),
		rng: rand.New(rand.NewPCG(c.Seed, 0x62656e6368)),

		extra: c.Properties,
	}
}

// Value shapes of generated properties: what analytics properties hold.
var (
	extraWords  = []string{"alpha", "beta", "gamma", "delta", "summer-sale", "newsletter", "mobile", "desktop", "organic", "referral"}
	extraCounts = []int{1, 2, 3, 5, 8, 13, 21}
)

func (s *source) next() (item, error) {
	m := s.gen.Next()
	target := "properties"
	if m.Body["type"] == ingest.TypeIdentify {
		target = "traits"
	}
	if s.extra > 0 {
		props, _ := m.Body[target].(map[string]any)
		if props == nil {
			props = map[string]any{}
			m.Body[target] = props
		}
		for i := range s.extra {
			key := fmt.Sprintf("attr_%02d", i)
			switch i % 4 {
			case 0:
				props[key] = extraWords[s.rng.IntN(len(extraWords))]
			case 1:
				props[key] = extraCounts[s.rng.IntN(len(extraCounts))]
			case 2:
				props[key] = float64(s.rng.IntN(100000)) / 100
			default:
				props[key] = s.rng.IntN(2) == 0
			}
		}
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Body["timestamp"].(string))
	if err != nil {
		return item{}, fmt.Errorf("workload timestamp: %w", err)
	}
	body, err := json.Marshal(m.Body)
	if err != nil {
		return item{}, fmt.Errorf("encode workload message: %w", err)
	}
	return item{lane: m.Lane, body: body, receivedAt: ts.Add(receiveDelay)}, nil
}

// chunk is a slice of consecutive events, parsed as the collector parses them.
type chunk struct {
	lanes  []string
	events []*ingest.Event
}

const chunkSize = 1024

// generate parses n events of the mix on every core and hands them to sink
// in chunks; sink is called concurrently. Generation is sequential (the
// generator is deterministic), parsing and whatever sink does are not.
func generate(ctx context.Context, src *source, n int64, sink func(*chunk) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type raw struct{ items []item }
	work := make(chan raw, 4)
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		// Workers stop when work is closed.
		go func() {
			defer wg.Done()
			for r := range work {
				if ctx.Err() != nil {
					continue
				}
				c := &chunk{lanes: make([]string, len(r.items)), events: make([]*ingest.Event, len(r.items))}
				for i, it := range r.items {
					ev, err := ingest.ParseMessage(it.body, "", time.Time{}, it.receivedAt, it.lane)
					if err != nil {
						cancel(fmt.Errorf("generated event rejected by the collector's parser: %w", err))
						break
					}
					c.lanes[i], c.events[i] = it.lane, ev
				}
				if ctx.Err() != nil {
					continue
				}
				if err := sink(c); err != nil {
					cancel(err)
				}
			}
		}()
	}
	var err error
	for made := int64(0); made < n && ctx.Err() == nil; {
		size := min(int64(chunkSize), n-made)
		r := raw{items: make([]item, size)}
		for i := range r.items {
			if r.items[i], err = src.next(); err != nil {
				cancel(err)
				break
			}
		}
		made += size
		select {
		case work <- r:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
		return cause
	}
	return ctx.Err()
}

// flatRow is one events row as JSONEachRow, the only shape ClickHouse
// 18.16's Kafka engine can read: it cannot parse a nested object into a
// String column nor an ISO-8601 time into a DateTime, so the peer is given
// the loader's output columns rather than the collector's records.
type flatRow struct {
	MessageID    string `json:"message_id"`
	Type         string `json:"type"`
	CustomerID   string `json:"customer_id"`
	UserID       string `json:"user_id"`
	AnonymousID  string `json:"anonymous_id"`
	Event        string `json:"event"`
	Properties   string `json:"properties"`
	Traits       string `json:"traits"`
	EventTime    int64  `json:"event_time"`
	EventTimeMs  uint64 `json:"event_time_ms"`
	SentAtMs     uint64 `json:"sent_at_ms"`
	ReceivedAtMs uint64 `json:"received_at_ms"`
	Source       string `json:"source"`
	Lane         string `json:"lane"`
	KafkaTopic   string `json:"kafka_topic"`
	// The columns of the message's context and of the group and alias
	// calls (peerContextColumns), in ingest.EventRows.Ctx's order.
	PreviousID             string `json:"previous_id"`
	GroupID                string `json:"group_id"`
	Context                string `json:"context"`
	ContextCampaignSource  string `json:"context_campaign_source"`
	ContextCampaignMedium  string `json:"context_campaign_medium"`
	ContextCampaignName    string `json:"context_campaign_name"`
	ContextCampaignTerm    string `json:"context_campaign_term"`
	ContextCampaignContent string `json:"context_campaign_content"`
	ContextPageURL         string `json:"context_page_url"`
	ContextPagePath        string `json:"context_page_path"`
	ContextPageReferrer    string `json:"context_page_referrer"`
	ContextPageTitle       string `json:"context_page_title"`
	ContextIP              string `json:"context_ip"`
	ContextUserAgent       string `json:"context_user_agent"`
	ContextLocale          string `json:"context_locale"`
	ContextTimezone        string `json:"context_timezone"`
	ContextLibraryName     string `json:"context_library_name"`
	ContextLibraryVersion  string `json:"context_library_version"`
}

// flatOf returns row i of rows as the peer's record, so the peer loads
// exactly the column values the loader would insert.
func flatOf(rows *ingest.EventRows, i int) flatRow {
	return flatRow{
		MessageID: rows.MessageID[i], Type: rows.Type[i], CustomerID: rows.CustomerID[i],
		UserID: rows.UserID[i], AnonymousID: rows.AnonymousID[i], Event: rows.Event[i],
		Properties: rows.Properties[i], Traits: rows.Traits[i],
		EventTime: rows.EventTime[i].Unix(), EventTimeMs: rows.EventTimeMs[i], SentAtMs: rows.SentAtMs[i],
		ReceivedAtMs: rows.ReceivedAtMs[i], Source: rows.Source[i], Lane: rows.Lane[i], KafkaTopic: rows.Topic[i],
		PreviousID:             rows.Ctx[0][i],
		GroupID:                rows.Ctx[1][i],
		Context:                rows.Ctx[2][i],
		ContextCampaignSource:  rows.Ctx[3][i],
		ContextCampaignMedium:  rows.Ctx[4][i],
		ContextCampaignName:    rows.Ctx[5][i],
		ContextCampaignTerm:    rows.Ctx[6][i],
		ContextCampaignContent: rows.Ctx[7][i],
		ContextPageURL:         rows.Ctx[8][i],
		ContextPagePath:        rows.Ctx[9][i],
		ContextPageReferrer:    rows.Ctx[10][i],
		ContextPageTitle:       rows.Ctx[11][i],
		ContextIP:              rows.Ctx[12][i],
		ContextUserAgent:       rows.Ctx[13][i],
		ContextLocale:          rows.Ctx[14][i],
		ContextTimezone:        rows.Ctx[15][i],
		ContextLibraryName:     rows.Ctx[16][i],
		ContextLibraryVersion:  rows.Ctx[17][i],
	}
}
