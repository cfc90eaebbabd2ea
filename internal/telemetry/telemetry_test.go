package telemetry

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	var lastErr error
	for range 50 {
		resp, err := c.Get(url)
		if err != nil {
			lastErr = err
			time.Sleep(20 * time.Millisecond)
			continue
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return 0, ""
}

func TestServeMetricsAndHealth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tideline_test_things_total", Help: "x"})
	reg.MustRegister(c)
	c.Add(3)
	healthy := errors.New("clickhouse unreachable")
	addr := testenv.FreeAddr(t)
	if err := Serve(ctx, addr, reg, func(context.Context) error { return healthy }, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, http.DefaultClient, "http://"+addr+"/metrics"); code != 200 || !strings.Contains(body, "tideline_test_things_total 3") {
		t.Fatalf("metrics: %d %q", code, body)
	}
	if code, body := get(t, http.DefaultClient, "http://"+addr+"/healthz"); code != 503 || !strings.Contains(body, "clickhouse unreachable") {
		t.Fatalf("unhealthy: %d %q", code, body)
	}
	healthy = nil
	if code, _ := get(t, http.DefaultClient, "http://"+addr+"/healthz"); code != 200 {
		t.Fatalf("healthy: %d", code)
	}
}

func TestServeTLS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	certs := testenv.Certificates(t)
	certFile, keyFile, pool := certs.ServerCert, certs.ServerKey, certs.Pool(t)
	addr := testenv.FreeAddr(t)
	if err := ServeTLS(ctx, addr, certFile, keyFile, NewRegistry(), nil, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	trusted := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if code, body := get(t, trusted, "https://"+addr+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics over TLS: %d", code)
	}
	// A client that does not trust the certificate is refused by TLS, and
	// plain HTTP gets no metrics.
	if _, err := http.Get("https://" + addr + "/metrics"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted client: want a certificate error, got %v", err)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP was served metrics")
		}
	}
	if err := ServeTLS(ctx, testenv.FreeAddr(t), certFile, "/nonexistent.pem", NewRegistry(), nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "/nonexistent.pem") {
		t.Fatalf("bad key file: want an error naming it, got %v", err)
	}
}
