package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	assembly "github.com/tideline-dev/tideline/pipeline"
	"github.com/tideline-dev/tideline/trigger"
)

// Child roles.
const (
	roleLoader    = "loader"
	roleCollector = "collector"
	roleEvaluator = "evaluator"
	roleTrigger   = "trigger"
)

// childSpec is what a child process runs; the parent writes it as JSON to
// the child's stdin.
type childSpec struct {
	Role       string                 `json:"role"`
	Name       string                 `json:"name"`
	ClickHouse chdb.Config            `json:"clickhouse"`
	Kafka      broker.Config          `json:"kafka"`
	Seeds      []string               `json:"seeds"`
	Loader     ingest.LoaderConfig    `json:"loader"`
	Collector  ingest.CollectorConfig `json:"collector"`
	// Materialize configures the evaluator; Trigger the poller, whose
	// webhooks go to WebhookURL signed with WebhookSecret.
	Materialize   materialize.Config `json:"materialize"`
	Trigger       trigger.Config     `json:"trigger"`
	WebhookURL    string             `json:"webhook_url,omitempty"`
	WebhookSecret string             `json:"webhook_secret,omitempty"`
	CPUProfile    string             `json:"cpuprofile,omitempty"`
	MemProfile    string             `json:"memprofile,omitempty"`
	// LogFile receives the child's debug-level log as JSON lines.
	LogFile string `json:"log_file,omitempty"`
}

// childReport is one JSON line a child writes to stdout: once when it is
// ready, once when it is done.
type childReport struct {
	Ready bool `json:"ready,omitempty"`
	// Addr is the collector's listen address.
	Addr string `json:"addr,omitempty"`
	Done bool   `json:"done,omitempty"`
	// PeakRSSKB is VmHWM from /proc/self/status at exit.
	PeakRSSKB int64 `json:"peak_rss_kb,omitempty"`
	// CPUSeconds is the child's user and system CPU time at exit.
	CPUSeconds float64                     `json:"cpu_seconds,omitempty"`
	Stats      map[string]ingest.LaneStats `json:"stats,omitempty"`
	Err        string                      `json:"err,omitempty"`
}

// RunChild runs the loader, collector, evaluator or trigger poller
// described by the JSON spec read from stdin until ctx ends, reporting on
// stdout; `tideline bench child` calls it. Each is built as its own command
// builds it, without its metrics endpoint.
func RunChild(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) error {
	var spec childSpec
	if err := json.NewDecoder(stdin).Decode(&spec); err != nil {
		return fmt.Errorf("read child spec from stdin: %w", err)
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})
	if spec.LogFile != "" {
		f, err := os.Create(spec.LogFile)
		if err != nil {
			return fmt.Errorf("child log: %w", err)
		}
		defer f.Close()
		handler = slog.NewMultiHandler(handler, slog.NewJSONHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	log := slog.New(handler).With("child", spec.Name)
	enc := json.NewEncoder(stdout)
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var stats func() map[string]ingest.LaneStats
	var err error
	switch spec.Role {
	case roleLoader:
		err = runLoaderChild(ctx, spec, enc, log, &stats)
	case roleCollector:
		err = runCollectorChild(ctx, spec, enc, log)
	case roleEvaluator:
		err = runEvaluatorChild(ctx, spec, enc, log)
	case roleTrigger:
		err = runTriggerChild(ctx, spec, enc, log)
	default:
		err = fmt.Errorf("unknown child role %q", spec.Role)
	}
	if spec.MemProfile != "" {
		if perr := writeAllocProfile(spec.MemProfile); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	rep := childReport{Done: true, PeakRSSKB: peakRSSKB("self"), CPUSeconds: cpuSeconds()}
	if stats != nil {
		rep.Stats = stats()
	}
	if err != nil {
		rep.Err = err.Error()
	}
	if eerr := enc.Encode(rep); eerr != nil {
		return errors.Join(err, eerr)
	}
	return err
}

// env is what a child's components share; a child's metrics stay
// unregistered (the bench measures from outside).
func (spec childSpec) env(conn *chdb.Conn, log *slog.Logger) assembly.Env {
	return assembly.Env{Conn: conn, Kafka: spec.Kafka, Seeds: spec.Seeds, Log: log}
}

func runLoaderChild(ctx context.Context, spec childSpec, enc *json.Encoder, log *slog.Logger, stats *func() map[string]ingest.LaneStats) error {
	conn, err := chdb.Open(ctx, spec.ClickHouse, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	l, err := assembly.NewLoader(spec.Loader, spec.env(conn, log))
	if err != nil {
		return err
	}
	*stats = l.Stats
	if err := enc.Encode(childReport{Ready: true}); err != nil {
		return err
	}
	return l.RunDraining(ctx)
}

// runCollectorChild serves the collector on a free loopback port with the
// producer options of `tideline collect`.
func runCollectorChild(ctx context.Context, spec childSpec, enc *json.Encoder, log *slog.Logger) error {
	client, err := kgo.NewClient(append(broker.ClientOpts(spec.Seeds, log), ingest.ProducerOpts(spec.Collector)...)...)
	if err != nil {
		return fmt.Errorf("kafka producer: %w", err)
	}
	defer client.Close()
	col, err := assembly.NewCollector(spec.Collector, spec.env(nil, log), client)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("collector listener: %w", err)
	}
	if err := enc.Encode(childReport{Ready: true, Addr: ln.Addr().String()}); err != nil {
		ln.Close()
		return err
	}
	return col.Serve(ctx, ln)
}

func writeAllocProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("alloc profile: %w", err)
	}
	return nil
}

// peakRSSKB reads VmHWM (the resident set's high-water mark) of a process
// ("self" or a pid) in KiB; 0 when it cannot be read.
func peakRSSKB(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// child is a running child process seen from the parent.
type child struct {
	name    string
	cmd     *exec.Cmd
	ready   childReport
	reports chan childReport
	stderr  *tail
	exited  chan struct{}
	waitErr error
}

// startChild starts spec as a child process and waits until it is ready.
func startChild(ctx context.Context, h Harness, spec childSpec) (*child, error) {
	in, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(h.Exe, h.ExeArgs...)
	cmd.Env = append(os.Environ(), h.ExeEnv...)
	cmd.Stdin = bytes.NewReader(in)
	// A child must not outlive the bench, even when the bench is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	c := &child{name: spec.Name, cmd: cmd, reports: make(chan childReport, 4), stderr: &tail{max: 8 << 10}, exited: make(chan struct{})}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, h.Exe, err)
	}
	// The reader ends when the child closes stdout (it exits).
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r childReport
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				c.reports <- r
			}
		}
		c.waitErr = cmd.Wait()
		close(c.reports)
		close(c.exited)
	}()
	select {
	case r, ok := <-c.reports:
		if !ok || !r.Ready {
			<-c.exited
			return nil, c.failure(r)
		}
		c.ready = r
		return c, nil
	case <-time.After(60 * time.Second):
		c.kill()
		return nil, fmt.Errorf("%w: %s not ready after 60s: %s", ErrChildFailed, spec.Name, c.stderr)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	}
}

// alive reports an error when the child has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return c.failure(childReport{})
	default:
		return nil
	}
}

// stop asks the child to drain and exit (SIGTERM) and returns its final report.
func (c *child) stop() (childReport, error) {
	rss := peakRSSKB(strconv.Itoa(c.cmd.Process.Pid))
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	var final childReport
	timeout := time.After(90 * time.Second)
	for {
		select {
		case r, ok := <-c.reports:
			if !ok {
				if final.PeakRSSKB == 0 {
					final.PeakRSSKB = rss
				}
				if !final.Done || final.Err != "" {
					return final, c.failure(final)
				}
				return final, nil
			}
			if r.Done {
				final = r
			}
		case <-timeout:
			c.kill()
			final.PeakRSSKB = rss
			return final, fmt.Errorf("%w: %s did not exit 90s after SIGTERM: %s", ErrChildFailed, c.name, c.stderr)
		}
	}
}

func (c *child) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

func (c *child) failure(r childReport) error {
	msg := r.Err
	if msg == "" && c.waitErr != nil {
		msg = c.waitErr.Error()
	}
	return fmt.Errorf("%w: %s: %s; its stderr ends with: %s", ErrChildFailed, c.name, msg, c.stderr)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(t.buf))
	if s == "" {
		return "(nothing)"
	}
	return s
}
