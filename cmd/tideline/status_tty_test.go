package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/creack/pty"

	"github.com/tideline-dev/tideline/internal/testenv"
)

// block is the terminal output of dev's status: each redraw moves the
// cursor up by the lines drawn before (ESC[nA), rewrites each line after
// clearing it (CR ESC[K line), and clears what a longer block left below
// (ESC[J).
var block = regexp.MustCompile(`\x1b\[(\d+)A|\r\x1b\[K([^\r\n\x1b]*)\r?\n|\x1b\[J`)

// TestDevStatusOnTerminal runs `tideline dev` on an 80-column pseudo
// terminal: its status is a block of lines no wider than the terminal,
// redrawn in place (the cursor goes back up exactly the lines drawn
// before, every time). With stdout not a terminal, dev writes no escape
// codes at all.
func TestDevStatusOnTerminal(t *testing.T) {
	bin := tidelineBinary(t)
	chCfg := testenv.ClickHouseConfig(t)
	testenv.ClickHouseWith(t, chCfg)
	dir := t.TempDir()
	env := append(os.Environ(),
		"TIDELINE_CLICKHOUSE_ADDR="+chCfg.Addr, "TIDELINE_CLICKHOUSE_DATABASE="+chCfg.Database,
		"TIDELINE_KAFKA_EMBEDDED_PORT="+strings.TrimPrefix(testenv.FreeAddr(t), "127.0.0.1:"),
		"TIDELINE_KAFKA_EMBEDDED_DATA_DIR="+filepath.Join(dir, "kafka"),
	)
	args := []string{"dev", "--duration", "4s", "--rate", "300", "--customers", "200", "--status-addr=", "--addr", testenv.FreeAddr(t)}

	t.Run("terminal", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("open a pseudo terminal: %v", err)
		}
		defer ptmx.Close()
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		// From the repository's top, where dev finds its default definitions.
		cmd.Dir, cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = "../..", env, tty, tty, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Only the child holds the terminal now: reads end when it exits.
		tty.Close()
		var out bytes.Buffer
		copied := make(chan struct{})
		go func() {
			_, _ = io.Copy(&out, ptmx)
			close(copied)
		}()
		werr := cmd.Wait()
		<-copied
		if werr != nil {
			t.Fatalf("dev: %v\n%s\n%s", werr, out.String(), stderr.String())
		}

		var blocks [][]string
		var cur []string
		ups := 0
		for _, m := range block.FindAllStringSubmatch(out.String(), -1) {
			switch {
			case m[1] != "":
				n, _ := strconv.Atoi(m[1])
				if len(blocks) == 0 || cur != nil {
					t.Fatalf("the cursor moves up %d lines before a block was drawn in full", n)
				}
				if prev := len(blocks[len(blocks)-1]); n != prev {
					t.Errorf("redraw %d moves the cursor up %d lines over a block of %d: not in place", len(blocks), n, prev)
				}
				ups++
			case strings.HasPrefix(m[0], "\r"):
				cur = append(cur, m[2])
			default:
				blocks = append(blocks, cur)
				cur = nil
			}
		}
		if len(blocks) < 2 || ups != len(blocks)-1 {
			t.Fatalf("want a block drawn and redrawn in place at least once, got %d blocks and %d cursor moves:\n%q", len(blocks), ups, out.String())
		}
		for i, b := range blocks {
			text := strings.Join(b, "\n")
			if !strings.Contains(text, "web") || !strings.Contains(text, "server") {
				t.Errorf("block %d does not show both lanes:\n%s", i, text)
			}
			for _, l := range b {
				if w := utf8.RuneCountInString(l); w > 80 {
					t.Errorf("block %d has a line of %d columns: %q", i, w, l)
				}
			}
		}
		t.Logf("%d blocks of %d lines; the last:\n%s", len(blocks), len(blocks[len(blocks)-1]), strings.Join(blocks[len(blocks)-1], "\n"))
	})

	t.Run("not a terminal", func(t *testing.T) {
		cmd := exec.Command(bin, append(args, "--log-json=false")...)
		cmd.Dir, cmd.Env = "../..", env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("dev: %v\n%s", err, out)
		}
		if i := bytes.Index(out, []byte("\x1b[")); i >= 0 {
			t.Fatalf("escape code in output that is not a terminal, at %d:\n%q", i, out[max(0, i-200):min(len(out), i+200)])
		}
		if !bytes.Contains(out, []byte("msg=status")) {
			t.Fatalf("no status log lines:\n%s", out)
		}
	})
}

// tidelineBinary builds the tideline binary from the working tree.
func tidelineBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tideline")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
