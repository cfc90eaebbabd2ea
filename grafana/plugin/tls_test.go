package plugin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// TestTLS points the data source at a ClickHouse whose secure native port
// requires a client certificate, with the CA and the client certificate in
// the secure JSON as Grafana stores them: the health check passes over
// mutual TLS; without the client certificate, with an untrusted CA or in
// plaintext it fails.
func TestTLS(t *testing.T) {
	certs := testenv.Certificates(t)
	addr := testenv.SecureClickHouse(t, certs)
	cfg := testenv.ServerConfig(t)
	cfg.Addr = addr
	cfg.TLS = tlsconf.Config{Enabled: true, CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
	testenv.ClickHouseWith(t, cfg)

	pem := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	settings := func(jsonData map[string]any, secure map[string]string) backend.DataSourceInstanceSettings {
		j := map[string]any{"host": host, "port": p, "database": cfg.Database, "dialTimeoutSeconds": 3}
		for k, v := range jsonData {
			j[k] = v
		}
		b, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		return backend.DataSourceInstanceSettings{UID: "tideline", JSONData: b, DecryptedSecureJSONData: secure}
	}
	mutual := map[string]string{"tlsCACert": pem(certs.CA), "tlsClientCert": pem(certs.ClientCert), "tlsClientKey": pem(certs.ClientKey)}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := open(t, settings(nil, mutual)).CheckHealth(ctx, &backend.CheckHealthRequest{})
	if err != nil || res.Status != backend.HealthStatusOk {
		t.Fatalf("over mutual TLS: %v %v %q", err, res.Status, res.Message)
	}

	refused := []struct {
		name     string
		jsonData map[string]any
		secure   map[string]string
		want     string
	}{
		{"no client certificate", map[string]any{"secure": true}, map[string]string{"tlsCACert": pem(certs.CA)}, "certificate required"},
		{"untrusted CA", nil, map[string]string{"tlsCACert": pem(certs.OtherCA), "tlsClientCert": mutual["tlsClientCert"], "tlsClientKey": mutual["tlsClientKey"]}, "certificate"},
		{"wrong server name", map[string]any{"tlsServerName": "clickhouse.example"}, mutual, "certificate"},
		{"plaintext", nil, nil, "cannot connect"},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			res, err := open(t, settings(r.jsonData, r.secure)).CheckHealth(ctx, &backend.CheckHealthRequest{})
			if err != nil || res.Status != backend.HealthStatusError || !strings.Contains(res.Message, r.want) {
				t.Fatalf("want a failed check mentioning %q, got %v %v %q", r.want, err, res.Status, res.Message)
			}
		})
	}
}

func TestSettingsTLS(t *testing.T) {
	tlsOf := func(s Settings) *tls.Config {
		t.Helper()
		o, err := s.options()
		if err != nil {
			t.Fatal(err)
		}
		return o.TLS
	}
	s := DefaultSettings()
	if tlsOf(s) != nil {
		t.Fatal("TLS on by default")
	}
	s.TLSSkipVerify = true
	if tc := tlsOf(s); tc == nil || !tc.InsecureSkipVerify {
		t.Fatal("tlsSkipVerify should connect with TLS, unverified")
	}
	s = DefaultSettings()
	s.Secure = true
	if tc := tlsOf(s); tc == nil || tc.InsecureSkipVerify || tc.ServerName != s.Host {
		t.Fatalf("secure should connect with TLS verifying the host: %+v", tc)
	}
	certs := testenv.Certificates(t)
	ca, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	s = DefaultSettings()
	s.TLSCACert, s.TLSServerName = string(ca), "clickhouse.internal"
	if tc := tlsOf(s); tc == nil || tc.RootCAs == nil || tc.ServerName != "clickhouse.internal" || tc.InsecureSkipVerify {
		t.Fatalf("a CA in the secure JSON should turn TLS on, verified against it: %+v", tc)
	}
	for name, bad := range map[string]Settings{
		"not PEM":         {TLSCACert: "not a certificate"},
		"cert, no key":    {TLSClientCert: string(ca)},
		"key not the key": {TLSClientCert: string(ca), TLSClientKey: "nope"},
	} {
		s := DefaultSettings()
		s.TLSCACert, s.TLSClientCert, s.TLSClientKey = bad.TLSCACert, bad.TLSClientCert, bad.TLSClientKey
		if err := s.Validate(); !errors.Is(err, ErrSettings) || !strings.Contains(err.Error(), "TLS") {
			t.Errorf("%s: want a settings error naming TLS, got %v", name, err)
		}
	}
}
