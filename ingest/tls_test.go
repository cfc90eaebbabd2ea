package ingest_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/component"
	"github.com/tideline-dev/tideline/internal/testenv"
)

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// postTrack sends one track event and returns the status and body.
func postTrack(t *testing.T, c *http.Client, url, key, id string) (int, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/track", bytes.NewReader(trackBody(id)))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(key, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String()), nil
}

// TestCollectorTLS serves the tracking API over TLS with a self-signed
// certificate: a client trusting it is answered, one that does not cannot
// connect, and plain HTTP is refused.
func TestCollectorTLS(t *testing.T) {
	certs := testenv.Certificates(t)
	pool := certs.Pool(t)
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	br := testenv.Embedded(t)
	prod, err := kgo.NewClient(broker.ClientOpts(br.Seeds, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	col, err := ingest.NewCollector(collectorConfig(), component.Env{Kafka: br.Config, Log: testenv.Logger(t)}, prod)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(col.Handler())
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	// The refused handshakes below are expected; keep them out of the output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()

	if code, body, err := postTrack(t, tlsClient(pool), srv.URL, webKey, "tls-1"); err != nil || code != 200 {
		t.Fatalf("trusting client: %d %s %v", code, body, err)
	}
	_, _, err = postTrack(t, tlsClient(x509.NewCertPool()), srv.URL, webKey, "tls-2")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("client without the certificate: %v, want an unknown-authority error", err)
	}
	code, body, err := postTrack(t, http.DefaultClient, strings.Replace(srv.URL, "https://", "http://", 1), webKey, "tls-3")
	if err != nil || code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port: %d %q %v, want 400", code, body, err)
	}
	recs := records(t, br.Seeds, br.Config.MustTopic("web"))
	if len(recs) != 1 {
		t.Fatalf("%d records, want the one event sent over TLS", len(recs))
	}
	if ev, err := ingest.DecodeRecord(recs[0].Value); err != nil || ev.MessageID != "tls-1" {
		t.Errorf("record %s: %v", recs[0].Value, err)
	}
}

// TestCollectCommandTLS runs `tideline collect` with the certificate and
// key given through TIDELINE_COLLECTOR_TLS_CERT/KEY and sends it an event
// over HTTPS.
func TestCollectCommandTLS(t *testing.T) {
	bin := buildTideline(t)
	certs := testenv.Certificates(t)
	certFile, keyFile, pool := certs.ServerCert, certs.ServerKey, certs.Pool(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "collect.log")
	p := startProc(t, bin, []string{"collect", "--broker", "embedded", "--addr", "127.0.0.1:0", "--metrics-addr=", "--log-json"}, []string{
		"TIDELINE_COLLECTOR_TLS_CERT=" + certFile,
		"TIDELINE_COLLECTOR_TLS_KEY=" + keyFile,
		"TIDELINE_KAFKA_EMBEDDED_PORT=0",
		"TIDELINE_KAFKA_EMBEDDED_DATA_DIR=",
	}, logPath)

	var addr string
	testenv.Eventually(t, time.Minute, "collector listening", func() (bool, string) {
		f, err := os.Open(logPath)
		if err != nil {
			return false, err.Error()
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
				TLS  bool   `json:"tls"`
			}
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "collector listening" {
				if !l.TLS {
					t.Fatalf("collector listening without TLS: %s", sc.Text())
				}
				addr = l.Addr
				return true, ""
			}
		}
		return false, "no 'collector listening' line yet"
	})
	defer func() {
		if t.Failed() {
			dumpLog(t, logPath)
		}
	}()
	code, body, err := postTrack(t, tlsClient(pool), "https://"+addr, "web-demo-key", "cmd-tls-1")
	if err != nil || code != 200 || body != `{"success":true,"accepted":1}` {
		t.Fatalf("HTTPS to tideline collect: %d %s %v", code, body, err)
	}
	if code, _, err := postTrack(t, http.DefaultClient, "http://"+addr, "web-demo-key", "cmd-tls-2"); err != nil || code != http.StatusBadRequest {
		t.Errorf("plain HTTP to tideline collect: %d %v, want 400", code, err)
	}
	if err := p.stop(t, time.Minute); err != nil {
		t.Errorf("collect exit after SIGTERM: %v", err)
	}
}
