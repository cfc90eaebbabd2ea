package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	assembly "github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
)

// AudienceViews installs the views of the audiences in cfg.AudiencesDir
// (the default audiences unless configured otherwise), as
// `tideline audiences apply` would: the "views attached" of the scenarios.
func AudienceViews(cfg materialize.Config, log *slog.Logger) ViewInstaller {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return func(ctx context.Context, conn *chdb.Conn) error {
		auds, err := materialize.LoadDefinitions(cfg.AudiencesDir)
		if err != nil {
			return err
		}
		plan, err := materialize.Compile(auds, materialize.AttributeSettings{Declared: cfg.Attributes, SetOnce: cfg.SetOnce})
		if err != nil {
			return err
		}
		// The database is empty: nothing to wait for before backfilling.
		if _, err := materialize.Apply(ctx, conn, plan, 0, log); err != nil {
			return fmt.Errorf("apply audiences: %w", err)
		}
		return nil
	}
}

// runEvaluatorChild runs the audience evaluator.
func runEvaluatorChild(ctx context.Context, spec childSpec, enc *json.Encoder, log *slog.Logger) error {
	conn, err := chdb.Open(ctx, spec.ClickHouse, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	ev, err := assembly.NewEvaluator(spec.Materialize, spec.env(conn, log))
	if err != nil {
		return err
	}
	if err := enc.Encode(childReport{Ready: true}); err != nil {
		return err
	}
	return ev.Run(ctx)
}

// runTriggerChild runs one trigger poller owning every customer, its
// campaigns' webhooks redirected to the bench's receiver, as `tideline dev`
// does.
func runTriggerChild(ctx context.Context, spec childSpec, enc *json.Encoder, log *slog.Logger) error {
	campaigns, err := trigger.LoadCampaigns(spec.Trigger.CampaignsDir)
	if errors.Is(err, fs.ErrNotExist) {
		campaigns, err = trigger.DefaultCampaigns()
	}
	if err != nil {
		return err
	}
	for _, c := range campaigns {
		if c.Deliver.Webhook == nil {
			continue
		}
		c.Deliver.Webhook.URL = spec.WebhookURL + "/hooks/" + c.ID
	}
	conn, err := chdb.Open(ctx, spec.ClickHouse, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	cfg := spec.Trigger
	cfg.Sharding = "none"
	cfg.MetricsAddr = ""
	// The bench's receiver secret signs every webhook, whatever
	// secret_env the campaigns name.
	cfg.SecretOverride = spec.WebhookSecret
	p, err := assembly.NewPoller(cfg, campaigns, spec.env(conn, log))
	if err != nil {
		return err
	}
	if err := enc.Encode(childReport{Ready: true}); err != nil {
		return err
	}
	return p.Run(ctx)
}

// hooks receives the trigger's webhooks and notes when each id first
// arrived. Signatures are the trigger's tests' business; the bench only
// times deliveries.
type hooks struct {
	mu   sync.Mutex
	got  map[string]uint64 // webhook-id → first arrival, epoch ms
	url  string
	srv  *http.Server
	done chan struct{}
}

func startHooks() (*hooks, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	h := &hooks{got: map[string]uint64{}, url: "http://" + ln.Addr().String(), done: make(chan struct{})}
	h.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := chdb.NowMs()
		if id := r.Header.Get("webhook-id"); id != "" {
			h.mu.Lock()
			if _, seen := h.got[id]; !seen {
				h.got[id] = at
			}
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	// The server stops when close is called.
	go func() {
		defer close(h.done)
		_ = h.srv.Serve(ln)
	}()
	return h, nil
}

func (h *hooks) arrivals() map[string]uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]uint64, len(h.got))
	for k, v := range h.got {
		out[k] = v
	}
	return out
}

func (h *hooks) close() {
	_ = h.srv.Close()
	<-h.done
}

// transitionLatencies is derived_at − event time of the entries and exits
// caused by events whose event time is in [from, to).
func transitionLatencies(ctx context.Context, conn *chdb.Conn, from, to time.Time) (Percentiles, error) {
	ds, err := materialize.CauseDelays(ctx, conn, uint64(from.UnixMilli()), uint64(to.UnixMilli()))
	if err != nil {
		return Percentiles{}, err
	}
	return percentiles(ds), nil
}

// webhookLatencies is arrival − qualifying event time of the fired ledger
// entries whose event time is in [from, to).
func webhookLatencies(ctx context.Context, conn *chdb.Conn, arrivals map[string]uint64, from, to time.Time) (Percentiles, error) {
	fired, err := trigger.NewLedger(conn).FiredQualifiedAt(ctx, uint64(from.UnixMilli()), uint64(to.UnixMilli()))
	if err != nil {
		return Percentiles{}, err
	}
	var ds []float64
	for key, ev := range fired {
		if at, ok := arrivals[key]; ok {
			ds = append(ds, float64(int64(at)-int64(ev)))
		}
	}
	return percentiles(ds), nil
}
