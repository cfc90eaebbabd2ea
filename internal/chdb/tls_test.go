package chdb_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// secureClickHouse starts a second ClickHouse server (scripts/clickhouse.sh
// with its own state dir and ports, so the shared server is untouched) with
// a secure native port whose certificate a throw-away CA signed and which
// requires a client certificate of that CA (mutual TLS), and returns that
// port's address.
func secureClickHouse(t *testing.T, certs testenv.Certs) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	ports := testenv.FreePorts(t, 4)
	etc := filepath.Join(state, "clickhouse", "etc", "config.d")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	dropIn := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <tcp_port_secure>%d</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>%s</certificateFile>
            <privateKeyFile>%s</privateKeyFile>
            <caConfig>%s</caConfig>
            <verificationMode>strict</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
</yandex>
`, ports[3], certs.ServerCert, certs.ServerKey, certs.CA)
	if err := os.WriteFile(filepath.Join(etc, "secure.xml"), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"TIDELINE_STATE_DIR="+state,
		fmt.Sprintf("TIDELINE_CH_TCP_PORT=%d", ports[0]),
		fmt.Sprintf("TIDELINE_CH_HTTP_PORT=%d", ports[1]),
		fmt.Sprintf("TIDELINE_CH_INTERSERVER_PORT=%d", ports[2]),
	)
	script := func(verb string) error {
		cmd := exec.Command(filepath.Join(repo, "scripts", "clickhouse.sh"), verb)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("scripts/clickhouse.sh %s: %w\n%s", verb, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		if err := script("stop"); err != nil {
			t.Error(err)
		}
	})
	if err := script("start"); err != nil {
		t.Fatalf("a second ClickHouse server with a secure port is required: %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[3])
}

// TestTLS connects over ClickHouse's secure native port, trusting the CA
// that signed its certificate and showing a client certificate, applies the
// schema and reads it back; and checks that an untrusted CA, a client
// without a certificate and a plaintext client are refused.
func TestTLS(t *testing.T) {
	certs := testenv.Certificates(t)
	addr := secureClickHouse(t, certs)
	config := func(tc tlsconf.Config) chdb.Config {
		c := testenv.ClickHouseConfig(t)
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
