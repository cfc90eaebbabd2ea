package chdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// TestTLS connects over ClickHouse's secure native port, trusting the CA
// that signed its certificate and showing a client certificate, applies the
// schema and reads it back; and checks that an untrusted CA, a client
// without a certificate and a plaintext client are refused.
func TestTLS(t *testing.T) {
	certs := testenv.Certificates(t)
	addr := testenv.SecureClickHouse(t, certs)
	config := func(tc tlsconf.Config) chdb.Config {
		c := testenv.ServerConfig(t)
		c.Addr, c.TLS, c.DialTimeout = addr, tc, 3*time.Second
		return c
	}

	mutual := func(tc tlsconf.Config) chdb.Config {
		tc.CertFile, tc.KeyFile = certs.ClientCert, certs.ClientKey
		return config(tc)
	}
	c := mutual(tlsconf.Config{Enabled: true, CAFile: certs.CA})
	conn := testenv.ClickHouseWith(t, c)
	ctx := context.Background()
	n, err := conn.Strings(ctx, "SELECT toString(count()) FROM system.tables WHERE database = currentDatabase() AND name = 'events'")
	if err != nil || len(n) != 1 || n[0] != "1" {
		t.Fatalf("the schema over TLS: %v %v", n, err)
	}

	refused := []struct {
		name string
		c    chdb.Config
		want string
	}{
		{"untrusted CA", mutual(tlsconf.Config{Enabled: true, CAFile: certs.OtherCA}), "certificate"},
		{"wrong server name", mutual(tlsconf.Config{Enabled: true, CAFile: certs.CA, ServerName: "clickhouse.example"}), "certificate"},
		{"no client certificate", config(tlsconf.Config{Enabled: true, CAFile: certs.CA}), "certificate required"},
		{"plaintext", config(tlsconf.Config{}), ""},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := chdb.Open(ctx, r.c, false)
			if err == nil {
				conn.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(err.Error(), r.want) {
				t.Fatalf("want an error mentioning %q, got %v", r.want, err)
			}
		})
	}
}
