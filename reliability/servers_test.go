package reliability

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/testenv"
)

// script runs one of the repository's service scripts with env, its output
// going to a file so that a server it leaves running cannot hold a pipe open.
func script(t testing.TB, env []string, name string, args ...string) error {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "script-*.log")
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "scripts", name)}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("scripts/%s %v: %w\n%s", name, args, err, b)
	}
	return nil
}

// ownClickHouse is a ClickHouse server of the test's own, started by
// scripts/clickhouse.sh in a private state directory.
type ownClickHouse struct {
	state string
	port  int
	env   []string
}

func startOwnClickHouse(t testing.TB) *ownClickHouse {
	t.Helper()
	state := t.TempDir()
	s := &ownClickHouse{state: state, port: testenv.FreePorts(t, 1)[0]}
	s.env = []string{
		"TIDELINE_STATE_DIR=" + state,
		"TIDELINE_CH_TCP_PORT=" + strconv.Itoa(s.port),
		"TIDELINE_CH_HTTP_PORT=" + strconv.Itoa(testenv.FreePorts(t, 1)[0]),
		"TIDELINE_CH_INTERSERVER_PORT=" + strconv.Itoa(testenv.FreePorts(t, 1)[0]),
	}
	if err := s.start(t); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.signal(syscall.SIGTERM, 30*time.Second) })
	return s
}

func (s *ownClickHouse) config() chdb.Config {
	c := chdb.DefaultConfig()
	c.Addr = fmt.Sprintf("127.0.0.1:%d", s.port)
	return c
}

func (s *ownClickHouse) start(t testing.TB) error {
	return script(t, s.env, "clickhouse.sh", "start")
}

// pid finds the server by its config file: the 18.16 server writes no pid
// file under a non-root layout.
func (s *ownClickHouse) pid() int {
	want := []byte("--config-file=" + filepath.Join(s.state, "clickhouse", "etc", "config.xml"))
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cl, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cl, want) {
			return pid
		}
	}
	return 0
}

// signal sends sig to the server and waits up to d for it to exit.
func (s *ownClickHouse) signal(sig syscall.Signal, d time.Duration) error {
	pid := s.pid()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, sig)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil || s.pid() == 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return fmt.Errorf("clickhouse pid %d did not exit within %s of %s", pid, d, sig)
}

// ownKafka is an Apache Kafka broker of the test's own, run by scripts/kafka.sh.
type ownKafka struct {
	port int
	env  []string
}

func startOwnKafka(t testing.TB) *ownKafka {
	t.Helper()
	k := &ownKafka{port: testenv.FreePorts(t, 1)[0]}
	k.env = []string{
		"TIDELINE_STATE_DIR=" + t.TempDir(),
		"TIDELINE_KAFKA_PORT=" + strconv.Itoa(k.port),
		"TIDELINE_KAFKA_CONTROLLER_PORT=" + strconv.Itoa(testenv.FreePorts(t, 1)[0]),
		"KAFKA_HEAP_OPTS=-Xmx512m -Xms128m",
	}
	if err := script(t, k.env, "kafka.sh", "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := script(t, k.env, "kafka.sh", "stop"); err != nil {
			t.Logf("stop own kafka: %v", err)
		}
	})
	return k
}

func (k *ownKafka) seeds() []string { return []string{fmt.Sprintf("127.0.0.1:%d", k.port)} }

// kill9 SIGKILLs the broker.
func (k *ownKafka) kill9(t testing.TB) error { return script(t, k.env, "kafka.sh", "kill") }

// start starts it again on the same storage and waits until it answers.
func (k *ownKafka) start(t testing.TB) error { return script(t, k.env, "kafka.sh", "start") }
