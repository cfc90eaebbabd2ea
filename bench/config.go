package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/materialize"
	"github.com/tideline-dev/tideline/trigger"
)

// Scenario names, in the order a run performs them.
const (
	ScenarioCeiling    = "ceiling"
	ScenarioThroughput = "throughput"
	ScenarioPeer       = "peer"
	ScenarioLatency    = "latency"
	ScenarioBacklog    = "backlog"
)

// allScenarios is every scenario, in run order.
var allScenarios = []string{ScenarioCeiling, ScenarioThroughput, ScenarioPeer, ScenarioLatency, ScenarioBacklog}

// Config shapes a run. Every scenario is bounded: a run stops by itself.
type Config struct {
	// Duration is how long each throughput measurement is sustained, and how
	// long the latency scenario drives traffic (default 30s).
	Duration time.Duration `koanf:"duration"`
	// Events is how many events are produced to Kafka before the throughput
	// scenarios (default 0: the ceiling's rate times Duration, so a loader
	// as fast as the ceiling is still measured over the whole Duration).
	Events int64 `koanf:"events"`
	// Customers is the number of distinct customers in the event mix (default 100000).
	Customers int `koanf:"customers"`
	// Properties adds this many generated properties to every track event's
	// properties and identify's traits, on top of the workload's own (default 6).
	Properties int `koanf:"properties"`
	// Seed makes the event mix reproducible (default 1).
	Seed uint64 `koanf:"seed"`
	// Rate is the fixed rate of the latency and backlog scenarios in events/s (default 2000).
	Rate float64 `koanf:"rate"`
	// Backlog is how long traffic accumulates while the web lane's loader is
	// paused in the backlog scenario (default 2m).
	Backlog time.Duration `koanf:"backlog"`
	// Scenarios to run (default all: ceiling, throughput, peer, latency, backlog).
	Scenarios []string `koanf:"scenarios"`
	// CeilingInserters is the number of concurrent inserts of the ceiling
	// (default 2: one per lane, the loader's own parallelism).
	CeilingInserters int `koanf:"ceiling_inserters"`
	// PeerConsumers is the Kafka engine's kafka_num_consumers (default 1, the engine's default).
	PeerConsumers int `koanf:"peer_consumers"`
	// LoaderProcesses is how many loader processes of one consumer group
	// drain the pre-produced events in the throughput scenario, sharing its
	// partitions (default 1).
	LoaderProcesses int `koanf:"loader_processes"`
	// Compression is the codec of the pre-produced records: snappy (the
	// franz-go default the collector uses), lz4, zstd, gzip or none (default snappy).
	Compression string `koanf:"compression"`
	// PollInterval is how often row visibility is sampled; latencies are
	// upper bounds with this resolution (default 50ms).
	PollInterval time.Duration `koanf:"poll_interval"`
	// ResultsDir receives <date>-<host>.json (default bench/results; "" writes none).
	ResultsDir string `koanf:"results_dir"`
	// Keep keeps the run's databases for inspection (default false).
	Keep bool `koanf:"keep"`
	// CPUProfile, when set, makes every child process write a CPU profile to
	// <CPUProfile>.<child>.pprof (default "": off).
	CPUProfile string `koanf:"cpuprofile"`
	// MemProfile, when set, makes every child process write an allocation
	// profile to <MemProfile>.<child>.pprof at exit (default "": off).
	MemProfile string `koanf:"memprofile"`
	// ChildLog, when set, makes every child process write its debug-level
	// log (each evaluation pass, each poll) to <ChildLog>.<child>.log, to
	// split a latency into its parts (default "": children log warnings to
	// the bench's stderr only).
	ChildLog string `koanf:"child_log"`
	// Cluster lists the native addresses of a ClickHouse cluster's servers,
	// comma-separated (default "": none). When set, the ceiling is measured
	// on it too, in cluster mode with every view attached, next to the
	// single server (scripts/cluster.sh addrs prints the local cluster's).
	Cluster string `koanf:"cluster"`
	// ClusterName is that cluster's name in its servers' remote_servers
	// (default tideline, the name scripts/cluster.sh writes).
	ClusterName string `koanf:"cluster_name"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Duration:         30 * time.Second,
		Customers:        100000,
		Properties:       6,
		Seed:             1,
		Rate:             2000,
		Backlog:          2 * time.Minute,
		Scenarios:        slices.Clone(allScenarios),
		CeilingInserters: 2,
		PeerConsumers:    1,
		LoaderProcesses:  1,
		Compression:      "snappy",
		PollInterval:     50 * time.Millisecond,
		ResultsDir:       "bench/results",
		ClusterName:      "tideline",
	}
}

// Validate says what to fix in c.
func (c Config) Validate() error {
	var errs []error
	if c.Duration < time.Second {
		errs = append(errs, fmt.Errorf("bench.duration must be at least 1s, got %s", c.Duration))
	}
	if c.Events < 0 {
		errs = append(errs, fmt.Errorf("bench.events must be 0 (automatic) or positive, got %d", c.Events))
	}
	if c.Customers < 1 {
		errs = append(errs, fmt.Errorf("bench.customers must be at least 1, got %d", c.Customers))
	}
	if c.Properties < 0 || c.Properties > 200 {
		errs = append(errs, fmt.Errorf("bench.properties must be between 0 and 200, got %d", c.Properties))
	}
	if c.Rate <= 0 {
		errs = append(errs, fmt.Errorf("bench.rate must be positive, got %g", c.Rate))
	}
	if c.Backlog < time.Second {
		errs = append(errs, fmt.Errorf("bench.backlog must be at least 1s, got %s", c.Backlog))
	}
	if len(c.Scenarios) == 0 {
		errs = append(errs, fmt.Errorf("bench.scenarios is empty: pick from %s", strings.Join(allScenarios, ", ")))
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(allScenarios, s) {
			errs = append(errs, fmt.Errorf("bench.scenarios: unknown scenario %q: pick from %s", s, strings.Join(allScenarios, ", ")))
		}
	}
	if c.CeilingInserters < 1 || c.CeilingInserters > 64 {
		errs = append(errs, fmt.Errorf("bench.ceiling_inserters must be between 1 and 64, got %d", c.CeilingInserters))
	}
	if c.PeerConsumers < 1 || c.PeerConsumers > 16 {
		errs = append(errs, fmt.Errorf("bench.peer_consumers must be between 1 and 16, got %d", c.PeerConsumers))
	}
	if c.LoaderProcesses < 1 || c.LoaderProcesses > 8 {
		errs = append(errs, fmt.Errorf("bench.loader_processes must be between 1 and 8, got %d", c.LoaderProcesses))
	}
	if _, err := codec(c.Compression); err != nil {
		errs = append(errs, err)
	}
	if c.PollInterval < 5*time.Millisecond || c.PollInterval > 5*time.Second {
		errs = append(errs, fmt.Errorf("bench.poll_interval must be between 5ms and 5s, got %s", c.PollInterval))
	}
	return errors.Join(errs...)
}

func (c Config) runs(s string) bool { return slices.Contains(c.Scenarios, s) }

// ViewInstaller installs the materialized views of the default audiences
// (and whatever else "views attached" means) into a freshly migrated database.
type ViewInstaller func(ctx context.Context, conn *chdb.Conn) error

// Harness is what a run needs besides its settings: where the servers are,
// the pipeline's own configuration, and how to start child processes.
type Harness struct {
	ClickHouse chdb.Config
	Kafka      broker.Config
	Loader     ingest.LoaderConfig
	Collector  ingest.CollectorConfig
	// Materialize and Trigger configure the evaluator and the trigger
	// poller that the latency scenario runs when the views are attached.
	Materialize materialize.Config
	Trigger     trigger.Config
	// Exe, ExeArgs and ExeEnv start a child process: the tideline binary
	// with "bench child" (or a test binary that serves RunChild).
	Exe     string
	ExeArgs []string
	ExeEnv  []string
	// Views installs the views of the "views attached" scenarios on top of
	// the migrations' (AudienceViews: the audiences'); nil installs none.
	Views ViewInstaller
	// Progress receives one line per step (nil: silent).
	Progress io.Writer
	Log      *slog.Logger
}
