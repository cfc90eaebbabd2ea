package telemetry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tideline-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

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
	certFile, keyFile, pool := selfSigned(t)
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
