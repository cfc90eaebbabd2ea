package chdb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// Config says where ClickHouse is and who to be there.
type Config struct {
	// Addr is host:port of the native protocol (default 127.0.0.1:19000, the
	// port scripts/clickhouse.sh listens on). A comma-separated list names
	// several servers of one cluster, tried in order, so a client keeps
	// working while one of them is down.
	Addr string `koanf:"addr"`
	// Cluster names the ClickHouse cluster (its remote_servers entry) that
	// holds tideline's tables (default empty: one server). When set,
	// migrations run ON CLUSTER and create Replicated and Distributed
	// tables (see sql/cluster.go), and every connection inserts through
	// Distributed tables synchronously.
	Cluster string `koanf:"cluster"`
	// Database holds tideline's tables (default "tideline").
	Database string `koanf:"database"`
	// User (default "default").
	User string `koanf:"user"`
	// Password (default empty), best given as TIDELINE_CLICKHOUSE_PASSWORD.
	// Never printed by `tideline config`, never logged.
	Password string `koanf:"password" secret:"true"`
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration `koanf:"dial_timeout"`
	// ReadTimeout bounds one query's wait for the server (default 60s).
	ReadTimeout time.Duration `koanf:"read_timeout"`
	// Compression turns on LZ4 block compression of the native protocol
	// (default true: it halves bytes on loopback at a small CPU cost).
	Compression bool `koanf:"compression"`
	// MaxOpenConns bounds the pool (default 8).
	MaxOpenConns int `koanf:"max_open_conns"`
	// TLS on the native protocol (clickhouse.tls.*), as ClickHouse Cloud
	// and other managed servers require on their secure port (9440).
	TLS tlsconf.Config `koanf:"tls"`
	// Observe, when set, is given every statement the connections Open
	// makes from this configuration send (tests that prove the SQL on other
	// ClickHouse versions replay it so); not a setting.
	Observe Observer `koanf:"-" yaml:"-" json:"-"`
}

// DefaultConfig returns the settings that match the repo's local server.
func DefaultConfig() Config {
	return Config{
		Addr:         "127.0.0.1:19000",
		Database:     "tideline",
		User:         "default",
		DialTimeout:  5 * time.Second,
		ReadTimeout:  60 * time.Second,
		Compression:  true,
		MaxOpenConns: 8,
	}
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidIdentifier reports whether s may be used unquoted as a ClickHouse
// database or table name.
func ValidIdentifier(s string) bool { return identRe.MatchString(s) }

// scratchNameMax bounds the part of a database's name its scratch
// databases carry.
const scratchNameMax = 40

// ScratchPrefix is how the names of the scratch databases a process
// creates beside database begin (a backfill replay's); a random suffix
// follows. ok is false when database's name is too long to be carried
// whole, so the prefix could also be another database's.
func ScratchPrefix(database string) (prefix string, ok bool) {
	return database[:min(len(database), scratchNameMax)] + "_replay_", len(database) <= scratchNameMax
}

// Validate says what to fix in c.
func (c Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("clickhouse.addr is empty: set it to host:port of the native protocol, e.g. 127.0.0.1:19000"))
	} else if _, port, ok := strings.Cut(c.Addr, ":"); !ok || port == "" {
		errs = append(errs, fmt.Errorf("clickhouse.addr %q has no port: use host:port", c.Addr))
	}
	if c.Cluster != "" && !ValidIdentifier(c.Cluster) {
		errs = append(errs, fmt.Errorf("clickhouse.cluster %q is not a valid identifier: name a cluster of the server's remote_servers", c.Cluster))
	}
	if !ValidIdentifier(c.Database) {
		errs = append(errs, fmt.Errorf("clickhouse.database %q is not a valid identifier (letters, digits, underscore)", c.Database))
	}
	if c.MaxOpenConns < 1 {
		errs = append(errs, fmt.Errorf("clickhouse.max_open_conns must be at least 1, got %d", c.MaxOpenConns))
	}
	errs = append(errs, c.TLS.Validate("clickhouse.tls"))
	return errors.Join(errs...)
}

func (c Config) options(database string) (*clickhouse.Options, error) {
	tc, err := c.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("clickhouse.tls: %w", err)
	}
	tlsconf.VerifyHost(tc, c.Addr)
	o := &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     strings.Split(c.Addr, ","),
		Auth: clickhouse.Auth{
			Database: database,
			Username: c.User,
			Password: c.Password,
		},
		DialTimeout:  c.DialTimeout,
		ReadTimeout:  c.ReadTimeout,
		MaxOpenConns: c.MaxOpenConns,
		MaxIdleConns: c.MaxOpenConns,
		TLS:          tc,
	}
	if c.Cluster != "" {
		o.Settings = ClusterSettings()
	}
	if c.Compression {
		o.Compression = &clickhouse.Compression{Method: clickhouse.CompressionLZ4}
	}
	return o, nil
}

// Conn is a ClickHouse connection pool with the server's version.
type Conn struct {
	driver.Conn
	Database string
	// Cluster is the cluster the tables live on ("" on one server).
	Cluster string
	Version Version

	// cfg is what the connection was opened with; nodes the connections
	// to single servers of the cluster it opened with it.
	cfg   Config
	nodes nodes
}

// Version is the server's major.minor.
type Version struct{ Major, Minor int }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Open connects to c.Database. With create set, the database is created first
// when missing (migrations do this; services expect it to exist).
func Open(ctx context.Context, c Config, create bool) (*Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if create {
		o, err := c.options("default")
		if err != nil {
			return nil, err
		}
		boot, err := clickhouse.Open(o)
		if err != nil {
			return nil, fmt.Errorf("open clickhouse %s: %w", c.Addr, err)
		}
		err = c.observe(boot, "default").Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.Database+c.OnCluster())
		boot.Close()
		if err != nil {
			return nil, fmt.Errorf("create database %s on %s: %w", c.Database, c.Addr, err)
		}
	}
	o, err := c.options(c.Database)
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(o)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", c.Addr, err)
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		if Code(err) == CodeUnknownDatabase {
			return nil, fmt.Errorf("clickhouse %s has no database %s: run `tideline migrate` against it, or fix clickhouse.database: %w", c.Addr, c.Database, err)
		}
		if why := tlsconf.Refusal(ctx, o.TLS, o.Addr[0], err, c.DialTimeout); why != nil {
			return nil, fmt.Errorf("connect to clickhouse %s over TLS (check clickhouse.tls): %w", c.Addr, why)
		}
		return nil, fmt.Errorf("connect to clickhouse %s (is it running? scripts/clickhouse.sh start): %w", c.Addr, err)
	}
	v := Version{int(sv.Version.Major), int(sv.Version.Minor)}
	return &Conn{Conn: c.observe(conn, c.Database), Database: c.Database, Cluster: c.Cluster, Version: v, cfg: c}, nil
}

// observe wraps conn so that c.Observe sees what it sends.
func (c Config) observe(conn driver.Conn, database string) driver.Conn {
	if c.Observe == nil {
		return conn
	}
	return &observed{Conn: conn, database: database, fn: c.Observe}
}

// OnCluster is the ON CLUSTER clause DDL takes in cluster mode, with a
// leading space, and empty on one server.
func (c Config) OnCluster() string { return onCluster(c.Cluster) }

// OnCluster is Config.OnCluster for the connection's cluster.
func (c *Conn) OnCluster() string { return onCluster(c.Cluster) }

func onCluster(cluster string) string {
	if cluster == "" {
		return ""
	}
	return " ON CLUSTER " + cluster
}

// ClusterSettings are the session settings of every connection in cluster
// mode:
//   - insert_distributed_sync: an INSERT into a Distributed table returns
//     once every shard's local table took its rows, so an acknowledged
//     batch is in the tables whose materialized views it must fire (an
//     asynchronous Distributed insert acknowledges a spool file on the
//     initiator, which a crash of that server loses, and the loader
//     commits Kafka offsets on the acknowledgement);
//   - insert_deduplicate 0: a replicated table's block
//     deduplication would drop a second, identical aggregate block from a
//     different insert (two batches each counting one event in the same
//     minute); tideline's tables are idempotent under redelivery by their
//     own keys, as on one server;
//
// The servers' profile must also set distributed_product_mode to global
// (scripts/cluster.sh and docker-compose.cluster.yml do): a JOIN or IN over
// two Distributed tables then sends the right side to every shard, so it
// answers as one server would even where the two sides are sharded by
// different keys. It is a string setting, which the native protocol of
// ClickHouse 18.16 cannot carry per session.
func ClusterSettings() clickhouse.Settings {
	return clickhouse.Settings{
		"insert_distributed_sync": 1,
		"insert_deduplicate":      0,
	}
}

// Strings runs a query of one String column and returns its values in
// order.
func (c *Conn) Strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := c.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// parseVersion reads "major.minor[.patch...]".
func parseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("version %q: want major.minor", s)
	}
	maj, err1 := strconv.Atoi(parts[0])
	min, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("version %q: want numbers", s)
	}
	return Version{maj, min}, nil
}

// Settings returns ctx carrying per-query settings.
func Settings(ctx context.Context, s clickhouse.Settings) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithSettings(s))
}

// NowMs is the current time in epoch milliseconds, the unit of every *_ms column.
func NowMs() uint64 { return uint64(time.Now().UnixMilli()) }

// Delete removes table's rows matching where (ALTER ... DELETE, a mutation
// on every ClickHouse this supports) and waits until the mutation is done,
// on every shard in cluster mode, so a read that follows no longer sees
// them. A mutation that is not done within timeout is an error that says
// so, naming the table.
func (c *Conn) Delete(ctx context.Context, table, where string, timeout time.Duration, args ...any) error {
	if err := c.AlterStorage(ctx, table, "DELETE WHERE "+where, args...); err != nil {
		return fmt.Errorf("delete rows from %s: %w", table, err)
	}
	mutations := "system.mutations"
	if c.Cluster != "" {
		mutations = "cluster('" + c.Cluster + "', system.mutations)"
	}
	deadline := time.Now().Add(timeout)
	for {
		var n uint64
		if err := c.QueryRow(ctx, "SELECT count() FROM "+mutations+" WHERE database = ? AND table IN (?, ?) AND is_done = 0",
			c.Database, table, table+"_local").Scan(&n); err != nil {
			return fmt.Errorf("wait for the delete from %s: %w", table, err)
		}
		if n == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("delete from %s: %d mutations not done after %s (see system.mutations)", table, n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
