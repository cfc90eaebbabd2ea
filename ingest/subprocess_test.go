package ingest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// buildTideline builds the real binary for the test.
func buildTideline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tideline")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tideline")
	cmd.Dir = ".." // the module root; tests run in the package directory
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tideline: %v\n%s", err, out)
	}
	return bin
}

// proc is a tideline subprocess whose output goes to a log file.
type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func startProc(t *testing.T, bin string, args, env []string, logPath string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s %v: %v", bin, args, err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		f.Close()
	}()
	// Whatever happens to the test, the process does not outlive it.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	err := <-p.done
	p.done <- err
}

// stop sends SIGTERM and returns the exit error (nil for a clean exit).
func (p *proc) stop(t *testing.T, within time.Duration) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(within):
		t.Fatalf("the process did not exit within %s of SIGTERM", within)
		return nil
	}
}

func dumpLog(t *testing.T, path string) {
	t.Helper()
	b, _ := os.ReadFile(path)
	if len(b) > 20000 {
		b = b[len(b)-20000:]
	}
	t.Logf("%s (last 20 KB):\n%s", path, b)
}
