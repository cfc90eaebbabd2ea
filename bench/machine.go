package bench

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
)

// Machine describes where a run happened: figures from a shared 2-core
// machine and from a dedicated 16-core one are not comparable, so every
// result carries this.
type Machine struct {
	Host      string `json:"host"`
	OS        string `json:"os"`
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMB  int64  `json:"memory_mb"`
	GoVersion string `json:"go_version"`
	// Commit is the tideline commit the binary was built from ("" under go run).
	Commit     string `json:"commit,omitempty"`
	ClickHouse string `json:"clickhouse"`
	Kafka      string `json:"kafka"`
	// Modules are the versions of the clients on the hot path.
	Modules map[string]string `json:"modules,omitempty"`
	// LoadBefore and LoadAfter are the 1-minute load averages when the run
	// started and ended; a load above the core count before the run means
	// other work shared the machine.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
}

func describeMachine(ctx context.Context, conn *chdb.Conn, seeds []string, bc broker.Config) Machine {
	m := Machine{OS: runtime.GOOS + "/" + runtime.GOARCH, Cores: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAverage()}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				m.MemoryMB = kb / 1024
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		m.Modules = map[string]string{}
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/twmb/franz-go", "github.com/ClickHouse/clickhouse-go/v2", "github.com/ClickHouse/ch-go":
				m.Modules[d.Path] = d.Version
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				m.Commit = s.Value
			}
		}
	}
	if m.Commit == "" {
		// Built without VCS stamping (go run, -buildvcs=false): the
		// checkout the bench runs in is the next best witness.
		if out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output(); err == nil {
			m.Commit = strings.TrimSpace(string(out))
		}
	}
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err == nil {
		m.ClickHouse = v
	}
	m.Kafka = kafkaVersion(ctx, seeds, bc)
	return m
}

// kafkaVersion names the broker: kfake for the embedded one, else franz-go's
// guess from the API versions it advertises.
func kafkaVersion(ctx context.Context, seeds []string, bc broker.Config) string {
	cl, err := kgo.NewClient(broker.ClientOpts(seeds, nil)...)
	if err != nil {
		return "unknown"
	}
	defer cl.Close()
	vs, err := kadm.NewClient(cl).ApiVersions(ctx)
	guess := "unknown"
	if err == nil {
		for _, v := range vs.Sorted() {
			if v.Err == nil {
				guess = v.VersionGuess()
				break
			}
		}
	}
	if bc.Mode == "embedded" {
		return "kfake (embedded in the bench process), speaks " + guess
	}
	return "Apache Kafka " + guess
}

func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return f
}
