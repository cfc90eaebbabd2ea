package chdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// A cluster's replicated tables are altered on one replica of each replica
// set, never ON CLUSTER. ClickHouse 18.16's DDL worker lets both replicas
// of a shard run one ALTER of a replicated table when they pick the task up
// together; the second fails ("already exists"), then fails to mark the
// task done ("Node exists .../executed") and stops its DDL worker for good,
// so every later ON CLUSTER statement waits on that server until it is
// restarted. An ALTER run on one replica reaches the others through
// ZooKeeper instead, as replicated tables are built to.

// node is one server of the cluster.
type node struct {
	addr           string
	shard, replica uint32
	conn           *Conn
}

// nodes holds the connections a Conn opened to each server of its cluster.
type nodes struct {
	mu   sync.Mutex
	list []*node
}

// AlterStorage runs "ALTER TABLE <table's storage> <rest>" (ADD COLUMN,
// DROP PARTITION, DELETE WHERE ...): on one server on table itself; on a
// cluster on the replicated table that holds table's rows (NAME_local under
// a sharded Distributed table, else table), once on a live replica of each
// replica set, waiting for the other replicas where ClickHouse can
// (replication_alter_partitions_sync = 2). Mutations (DELETE) still finish
// in the background: Delete waits for them.
func (c *Conn) AlterStorage(ctx context.Context, table, rest string, args ...any) error {
	if c.Cluster == "" {
		return c.Exec(ctx, "ALTER TABLE "+table+" "+rest, args...)
	}
	local, sharded, err := c.StorageTable(ctx, table)
	if err != nil {
		return err
	}
	list, err := c.clusterNodes(ctx)
	if err != nil {
		return err
	}
	ctx = Settings(ctx, map[string]any{"replication_alter_partitions_sync": 2})
	done := map[uint32]bool{}
	var errs []error
	for _, n := range list {
		set := uint32(0) // a table replicated to every server is one replica set
		if sharded {
			set = n.shard
		}
		if done[set] {
			continue
		}
		conn, err := c.nodeConn(ctx, n)
		if err == nil {
			err = conn.Exec(ctx, "ALTER TABLE "+local+" "+rest, args...)
		}
		if err != nil {
			if Code(err) == 0 {
				// A replica that did not answer: another of its set
				// takes it.
				errs = append(errs, fmt.Errorf("%s: %w", n.addr, err))
				continue
			}
			return fmt.Errorf("alter %s on %s: %w", local, n.addr, err)
		}
		done[set] = true
	}
	for _, n := range list {
		set := uint32(0)
		if sharded {
			set = n.shard
		}
		if !done[set] {
			return fmt.Errorf("alter %s: no replica of shard %d answered: %w", local, n.shard, errors.Join(errs...))
		}
	}
	return nil
}

// StorageTable names the table holding table's rows: table itself on one
// server; on a cluster the replicated table, NAME_local under a sharded
// Distributed NAME (sharded is then true), else NAME.
func (c *Conn) StorageTable(ctx context.Context, table string) (string, bool, error) {
	if c.Cluster == "" {
		return table, false, nil
	}
	var n uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ?", table+"_local").Scan(&n); err != nil {
		return "", false, fmt.Errorf("find the storage of %s: %w", table, err)
	}
	if n > 0 {
		return table + "_local", true, nil
	}
	return table, false, nil
}

// clusterNodes lists the servers of c's cluster, in shard then replica order.
func (c *Conn) clusterNodes(ctx context.Context) ([]*node, error) {
	c.nodes.mu.Lock()
	defer c.nodes.mu.Unlock()
	if c.nodes.list != nil {
		return c.nodes.list, nil
	}
	var list []*node
	err := c.Each(ctx, "SELECT host_address, port, shard_num, replica_num FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num",
		[]any{c.Cluster}, func(r Rows) error {
			var host string
			var port uint16
			var n node
			if err := r.Scan(&host, &port, &n.shard, &n.replica); err != nil {
				return err
			}
			n.addr = fmt.Sprintf("%s:%d", host, port)
			if strings.Contains(host, ":") {
				n.addr = fmt.Sprintf("[%s]:%d", host, port)
			}
			list = append(list, &n)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("the servers of cluster %s: %w", c.Cluster, err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("cluster %s is not in the server's remote_servers (system.clusters)", c.Cluster)
	}
	c.nodes.list = list
	return list, nil
}

// nodeConn is a connection to n alone, with c's settings, opened once.
func (c *Conn) nodeConn(ctx context.Context, n *node) (*Conn, error) {
	c.nodes.mu.Lock()
	defer c.nodes.mu.Unlock()
	if n.conn != nil {
		return n.conn, nil
	}
	cfg := c.cfg
	cfg.Addr = n.addr
	conn, err := Open(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	n.conn = conn
	return conn, nil
}

// Close closes the connection pool and those opened to single servers.
func (c *Conn) Close() error {
	c.nodes.mu.Lock()
	for _, n := range c.nodes.list {
		if n.conn != nil {
			n.conn.Close()
			n.conn = nil
		}
	}
	c.nodes.mu.Unlock()
	if c.Conn == nil {
		return nil
	}
	return c.Conn.Close()
}
