package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
)

// standardWebhooksVersion is the PyPI release of the reference library the
// test verifies against.
const standardWebhooksVersion = "1.1.0"

// standardWebhooksPython returns a Python interpreter that imports the
// standardwebhooks package: the system's if it has it, else a virtualenv
// under .state/ that this installs from PyPI once.
func standardWebhooksPython(t *testing.T) string {
	t.Helper()
	if exec.Command("python3", "-c", "import standardwebhooks").Run() == nil {
		return "python3"
	}
	venv := filepath.Join(repoRoot(t), ".state", "pywebhooks")
	py := filepath.Join(venv, "bin", "python")
	if exec.Command(py, "-c", "import standardwebhooks").Run() == nil {
		return py
	}
	for _, args := range [][]string{
		{"python3", "-m", "venv", venv},
		{py, "-m", "pip", "install", "-q", "standardwebhooks==" + standardWebhooksVersion},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("the webhook test verifies with Python's standardwebhooks package and could not install it (%s: %v):\n%s\n"+
				"install it by hand: python3 -m venv .state/pywebhooks && .state/pywebhooks/bin/pip install standardwebhooks==%s",
				strings.Join(args, " "), err, out, standardWebhooksVersion)
		}
	}
	return py
}

// webhookMsg is a message for the Python verifier.
type webhookMsg struct {
	Secret  string            `json:"secret"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

type verdict struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// verifyInPython runs testdata/verify_webhook.py over msgs.
func verifyInPython(t *testing.T, py string, msgs []webhookMsg) []verdict {
	t.Helper()
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, m := range msgs {
		if err := enc.Encode(m); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(py, filepath.Join("testdata", "verify_webhook.py"))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("verify_webhook.py: %v\n%s", err, stderr.String())
	}
	var vs []verdict
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var v verdict
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("verify_webhook.py output %q: %v", out, err)
		}
		vs = append(vs, v)
	}
	if len(vs) != len(msgs) {
		t.Fatalf("verify_webhook.py answered %d of %d messages:\n%s", len(vs), len(msgs), stderr.String())
	}
	return vs
}

// signed is a message signed by tideline's signer.
func signed(secrets []trigger.Secret, verifyWith trigger.Secret, id string, ts time.Time, body string) webhookMsg {
	h := http.Header{}
	trigger.SetHeaders(h, secrets, id, ts, []byte(body))
	return webhookMsg{Secret: verifyWith.String(), Body: body, Headers: map[string]string{
		"webhook-id":        h.Get(trigger.HeaderWebhookID),
		"webhook-timestamp": h.Get(trigger.HeaderWebhookTimestamp),
		"webhook-signature": h.Get(trigger.HeaderWebhookSignature),
	}}
}

// captured is a webhook request as the receiver saw it.
type captured struct {
	headers http.Header
	body    []byte
}

// TestWebhookSignaturesIndependent has Python's standardwebhooks (the
// reference implementation, not tideline's code) verify a webhook the
// poller really delivered, accept tideline-signed messages including a
// key rotation, and reject tampered bodies, ids, wrong keys and stale or
// future timestamps. The same delivery then proves the signing secret
// appears nowhere in ClickHouse.
func TestWebhookSignaturesIndependent(t *testing.T) {
	py := standardWebhooksPython(t)

	secret, previous := trigger.NewSecret(), trigger.NewSecret()
	now := time.Now()
	body := `{"campaign_id":"c","customer_id":"u","amount":150}`
	type tc struct {
		name string
		msg  webhookMsg
		ok   bool
	}
	cases := []tc{
		{"fresh", signed([]trigger.Secret{secret}, secret, "msg_1", now, body), true},
		{"rotation: verified with the previous key", signed([]trigger.Secret{secret, previous}, previous, "msg_2", now, body), true},
		{"rotation: verified with the new key", signed([]trigger.Secret{secret, previous}, secret, "msg_3", now, body), true},
		{"wrong key", signed([]trigger.Secret{secret}, trigger.NewSecret(), "msg_4", now, body), false},
		{"stale timestamp (10 minutes old)", signed([]trigger.Secret{secret}, secret, "msg_6", now.Add(-10*time.Minute), body), false},
		{"future timestamp (10 minutes ahead)", signed([]trigger.Secret{secret}, secret, "msg_7", now.Add(10*time.Minute), body), false},
	}
	tampered := signed([]trigger.Secret{secret}, secret, "msg_5", now, body)
	tampered.Body = strings.Replace(tampered.Body, "150", "1500", 1)
	cases = append(cases, tc{"tampered body", tampered, false})
	otherID := signed([]trigger.Secret{secret}, secret, "msg_8", now, body)
	otherID.Headers["webhook-id"] = "msg_9"
	cases = append(cases, tc{"tampered id", otherID, false})

	got := deliverOne(t, secret)
	delivered := webhookMsg{Secret: secret.String(), Body: string(got.body), Headers: map[string]string{}}
	for _, h := range []string{trigger.HeaderWebhookID, trigger.HeaderWebhookTimestamp, trigger.HeaderWebhookSignature} {
		delivered.Headers[h] = got.headers.Get(h)
	}
	cases = append(cases, tc{"delivered by the poller", delivered, true})
	deliveredTampered := delivered
	deliveredTampered.Body = strings.Replace(delivered.Body, "{", `{"injected":true,`, 1)
	cases = append(cases, tc{"delivered, body tampered", deliveredTampered, false})

	msgs := make([]webhookMsg, len(cases))
	for i, c := range cases {
		msgs[i] = c.msg
	}
	verdicts := verifyInPython(t, py, msgs)
	for i, c := range cases {
		if verdicts[i].OK != c.ok {
			t.Errorf("%s: standardwebhooks said ok=%v (%s), want ok=%v", c.name, verdicts[i].OK, verdicts[i].Error, c.ok)
		} else {
			t.Logf("%s: ok=%v %s", c.name, verdicts[i].OK, verdicts[i].Error)
		}
	}
}

// deliverOne runs the poller on one qualifying purchase with a campaign
// whose webhook secret is in the environment, returns the request the
// receiver got, and checks the secret was written nowhere in ClickHouse.
func deliverOne(t *testing.T, secret trigger.Secret) captured {
	t.Helper()
	conn := testenv.ClickHouse(t)
	br := testenv.Embedded(t)
	var (
		mu  sync.Mutex
		got []captured
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, captured{headers: r.Header.Clone(), body: b})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	const env = "TIDELINE_RELIABILITY_WEBHOOK_SECRET_PROBE"
	t.Setenv(env, secret.String())
	def := fmt.Sprintf(`id: reliability_probe
name: Reliability probe
trigger:
  event:
    name: purchase
    where:
      amount: {gt: 100}
staleness:
  budget: 1h
  late: fire_late
reeligible_after: 0
deliver:
  webhook:
    url: %s/hook
    secret_env: %s
`, srv.URL, env)
	c, err := trigger.ParseCampaign("reliability_probe.yaml", []byte(def))
	if err != nil {
		t.Fatal(err)
	}
	cfg := trigger.DefaultConfig()
	cfg.Sharding, cfg.MetricsAddr = "none", ""
	cfg.PollInterval, cfg.CursorInterval, cfg.Overlap = 20*time.Millisecond, 200*time.Millisecond, 5*time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	p, err := pipeline.NewPoller(cfg, []*trigger.Campaign{c}, pipeline.Env{Conn: conn, Kafka: br.Config, Seeds: br.Seeds, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	var rows ingest.EventRows
	rows.Add(&ingest.Event{MessageID: "probe-1", Type: ingest.TypeTrack, UserID: "probe-user", Event: "purchase",
		Properties: []byte(`{"amount":150}`), Timestamp: at, ReceivedAt: at}, "web", "events.web", 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The poller stops when cancel is called below.
	go func() { done <- p.Run(ctx) }()
	if err := rows.Insert(context.Background(), conn, chdb.NowMs()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the poller delivered no webhook within 60s (poller: %v)", <-done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("poller: %v", err)
	}
	for _, needle := range []string{secret.String(), strings.TrimPrefix(secret.String(), "whsec_")} {
		hits, err := findInDatabase(context.Background(), conn, needle)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) > 0 {
			t.Errorf("the webhook secret is stored in ClickHouse: %v", hits)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return got[0]
}
