package trigger

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/trigger/receiver"
)

// TestSignSpecVector checks sign against the example of the Standard
// Webhooks specification.
func TestSignSpecVector(t *testing.T) {
	s, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := sign([]Secret{s}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("sign = %q, want %q", got, want)
	}
}

// TestSignRotation sends with two secrets: a receiver holding either one
// (verifying with its own code) accepts the request, one holding neither
// refuses it.
func TestSignRotation(t *testing.T) {
	current, previous, other := NewSecret(), NewSecret(), NewSecret()
	body := []byte(`{"type":"campaign.fired","data":{"webhook_id":"msg_1"}}`)
	for _, tc := range []struct {
		name   string
		holds  Secret
		status int
	}{{"current", current, 204}, {"previous", previous, 204}, {"neither", other, 400}} {
		t.Run(tc.name, func(t *testing.T) {
			rcv, err := receiver.NewReceiver(tc.holds.String())
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rcv.ServeHTTP(&statusOverride{ResponseWriter: w}, r)
			}))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
			SetHeaders(req.Header, []Secret{current, previous}, "msg_1", time.Now(), body)
			if sigs := strings.Fields(req.Header.Get(HeaderWebhookSignature)); len(sigs) != 2 {
				t.Fatalf("want two signatures, got %q", req.Header.Get(HeaderWebhookSignature))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (refusals: %v)", resp.StatusCode, tc.status, rcv.InvalidReasons())
			}
		})
	}
}

// statusOverride turns the receiver's 200 into 204, to tell its answer from
// a default one.
type statusOverride struct{ http.ResponseWriter }

func (s *statusOverride) WriteHeader(code int) {
	if code == http.StatusOK {
		code = http.StatusNoContent
	}
	s.ResponseWriter.WriteHeader(code)
}

func TestSignatureTamper(t *testing.T) {
	s := NewSecret()
	rcv, err := receiver.NewReceiver(s.String())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"data":{"webhook_id":"msg_2"}}`)
	for name, mutate := range map[string]func(r *http.Request){
		"body":      func(r *http.Request) { r.Body = http.NoBody },
		"id":        func(r *http.Request) { r.Header.Set(HeaderWebhookID, "msg_3") },
		"timestamp": func(r *http.Request) { r.Header.Set(HeaderWebhookTimestamp, "1614265330") },
		"missing":   func(r *http.Request) { r.Header.Del(HeaderWebhookSignature) },
	} {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		SetHeaders(req.Header, []Secret{s}, "msg_2", time.Now(), body)
		mutate(req)
		w := httptest.NewRecorder()
		rcv.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s tampered: status %d, want 400", name, w.Code)
		}
	}
}

func TestParseSecret(t *testing.T) {
	if _, err := ParseSecret("whsec_c2hvcnQ="); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
	if _, err := ParseSecret("whsec_not base64!"); err == nil {
		t.Error("a non-base64 secret was accepted")
	}
	s := NewSecret()
	back, err := ParseSecret(s.String())
	if err != nil || !bytes.Equal(back, s) {
		t.Errorf("round trip: %v", err)
	}
	if _, err := ParseSecret(strings.TrimPrefix(s.String(), "whsec_")); err != nil {
		t.Errorf("secret without prefix: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 12, 14, 18, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BackoffBase, cfg.BackoffMax, cfg.MaxRetryAfter = time.Second, 10*time.Second, time.Minute
	for n, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 9: 10 * time.Second} {
		for range 20 {
			d := retryDelay(cfg, n, 0)
			if d < base/2 || d > base {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, base/2, base)
			}
		}
	}
	if d := retryDelay(cfg, 1, 30*time.Second); d != 30*time.Second {
		t.Errorf("Retry-After 30s gave %v", d)
	}
	if d := retryDelay(cfg, 1, time.Hour); d != time.Minute {
		t.Errorf("Retry-After 1h gave %v, want the 1m cap", d)
	}
}
