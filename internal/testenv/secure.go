package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the repository's top folder, where scripts/ lives.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// SecureClickHouse starts a second ClickHouse server (scripts/clickhouse.sh
// with its own state dir and ports, so the shared server is untouched) with
// a secure native port whose certificate certs' CA signed and which
// requires a client certificate of that CA (mutual TLS), and returns that
// port's address. The server stops when the test ends.
func SecureClickHouse(t testing.TB, certs Certs) string {
	t.Helper()
	repo := repoRoot(t)
	state := t.TempDir()
	ports := FreePorts(t, 4)
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
