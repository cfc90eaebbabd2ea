package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// TestCollectAndIngestShareEmbeddedBroker runs `tideline collect` and
// `tideline ingest` as two processes on the embedded default, as a
// newcomer would in two terminals: the second finds the broker the first
// serves, an accepted event reaches ClickHouse, and each stops cleanly.
func TestCollectAndIngestShareEmbeddedBroker(t *testing.T) {
	chCfg := testenv.ClickHouseConfig(t)
	conn := testenv.ClickHouseWith(t, chCfg)
	bin := tidelineBinary(t)
	dir := t.TempDir()
	collectorAddr := testenv.FreeAddr(t)
	env := append(os.Environ(),
		"TIDELINE_CLICKHOUSE_ADDR="+chCfg.Addr, "TIDELINE_CLICKHOUSE_DATABASE="+chCfg.Database,
		// Only the port differs from the defaults, so the test runs beside a `tideline dev`.
		"TIDELINE_KAFKA_EMBEDDED_PORT="+strings.TrimPrefix(testenv.FreeAddr(t), "127.0.0.1:"),
		"TIDELINE_KAFKA_EMBEDDED_DATA_DIR="+filepath.Join(dir, "kafka"),
	)
	start := func(name string, args ...string) (*exec.Cmd, *bytes.Buffer, chan error) {
		var out bytes.Buffer
		cmd := exec.Command(bin, append(args, "--log-json=false")...)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, &syncWriter{b: &out}, &syncWriter{b: &out}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		return cmd, &out, done
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute", what)
			}
		}
	}
	has := func(b *bytes.Buffer, s string) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return strings.Contains(b.String(), s) }
	}

	collect, collectOut, collectDone := start("collect", "collect", "--addr", collectorAddr, "--metrics-addr=")
	waitFor("collect serving the embedded broker", has(collectOut, "serving the embedded broker"))
	waitFor("collect listening", has(collectOut, "collector listening"))
	ingest, ingestOut, ingestDone := start("ingest", "ingest", "--metrics-addr=")
	waitFor("ingest using the broker collect serves", has(ingestOut, "using the embedded broker another tideline process serves"))

	body := `{"messageId": "two-terminals-1", "userId": "u1", "event": "signup", "timestamp": "` + time.Now().UTC().Format(time.RFC3339) + `"}`
	if code := testenv.Post(t, "http://"+collectorAddr+"/v1/track", "web-demo-key", []byte(body)).StatusCode; code != http.StatusOK {
		t.Fatalf("track answered %d", code)
	}
	waitFor("the event in ClickHouse", func() bool {
		var n uint64
		err := conn.QueryRow(context.Background(), "SELECT count() FROM event_positions WHERE message_id = 'two-terminals-1'").Scan(&n)
		return err == nil && n > 0
	})

	for _, p := range []struct {
		name string
		cmd  *exec.Cmd
		done chan error
		out  *bytes.Buffer
	}{{"ingest", ingest, ingestDone, ingestOut}, {"collect", collect, collectDone, collectOut}} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			if err != nil {
				mu.Lock()
				t.Errorf("%s exited with %v:\n%s", p.name, err, p.out.String())
				mu.Unlock()
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s did not stop within a minute of SIGTERM", p.name)
		}
	}
	if !has(ingestOut, "loader stopped with every record in the lanes loaded")() {
		t.Errorf("ingest did not report that it left nothing behind:\n%s", ingestOut.String())
	}
}

// mu guards the subprocesses' output buffers.
var mu sync.Mutex

type syncWriter struct{ b *bytes.Buffer }

func (w *syncWriter) Write(p []byte) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	return w.b.Write(p)
}
