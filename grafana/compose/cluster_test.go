package compose

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/tideline-dev/tideline/internal/chdb"
)

// clusterXML is the part of grafana/compose/cluster/node.xml the services
// must agree with.
type clusterXML struct {
	Keeper []struct {
		Host string `xml:"host"`
		Port string `xml:"port"`
	} `xml:"zookeeper>node"`
	Servers struct {
		Tideline struct {
			Shards []struct {
				Replicas []struct {
					Host string `xml:"host"`
					Port string `xml:"port"`
				} `xml:"replica"`
			} `xml:"shard"`
		} `xml:"tideline"`
	} `xml:"remote_servers"`
}

// TestClusterComposeAgrees: docker-compose.cluster.yml loads on top of
// docker-compose.yml; every server of remote_servers is a service whose
// shard and replica macros put it where remote_servers does; the tideline
// services talk to exactly those servers in cluster mode, with settings
// the binary accepts; and every file the override mounts exists. Docker
// does not run here: this is as far as these machines can check it.
func TestClusterComposeAgrees(t *testing.T) {
	p := loadFiles(t, []string{"docker-compose.yml", "docker-compose.cluster.yml"}, "demo")
	b, err := os.ReadFile(filepath.Join(root, "grafana", "compose", "cluster", "node.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var cx clusterXML
	if err := xml.Unmarshal(b, &cx); err != nil {
		t.Fatalf("node.xml: %v", err)
	}
	var addrs []string
	for i, sh := range cx.Servers.Tideline.Shards {
		for _, r := range sh.Replicas {
			addrs = append(addrs, r.Host+":"+r.Port)
			s := service(t, p, r.Host)
			if got := env(s, "CH_SHARD"); got != string(rune('1'+i)) {
				t.Errorf("%s has CH_SHARD %q, remote_servers puts it in shard %d", r.Host, got, i+1)
			}
			if got := env(s, "CH_REPLICA"); got != r.Host {
				t.Errorf("%s has CH_REPLICA %q, want its own host name", r.Host, got)
			}
			if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
				return v.Target == "/etc/clickhouse-server/config.d/cluster.xml"
			}) {
				t.Errorf("%s does not mount node.xml", r.Host)
			}
			if _, ok := s.DependsOn["keeper"]; !ok {
				t.Errorf("%s does not wait for keeper", r.Host)
			}
		}
	}
	if len(addrs) != 4 {
		t.Fatalf("remote_servers lists %d servers, want 2 shards x 2 replicas", len(addrs))
	}
	if len(cx.Keeper) != 1 || cx.Keeper[0].Host != "keeper" || cx.Keeper[0].Port != "9181" {
		t.Errorf("node.xml's keeper is %+v, want keeper:9181", cx.Keeper)
	}
	service(t, p, "keeper")
	for _, name := range []string{"migrate", "loader", "evaluator", "poller"} {
		s := service(t, p, name)
		c := chdb.DefaultConfig()
		c.Addr, c.Cluster, c.Database = env(s, "TIDELINE_CLICKHOUSE_ADDR"), env(s, "TIDELINE_CLICKHOUSE_CLUSTER"), "tideline"
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if c.Cluster != "tideline" {
			t.Errorf("%s runs in cluster %q, want the remote_servers entry tideline", name, c.Cluster)
		}
		if got := strings.Split(c.Addr, ","); !slices.Equal(got, addrs) {
			t.Errorf("%s talks to %v, remote_servers lists %v", name, got, addrs)
		}
		if env(s, "TIDELINE_CONFIG") == "" {
			t.Errorf("%s lost TIDELINE_CONFIG in the override", name)
		}
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s mounts %s: %v", name, v.Source, err)
				}
			} else if _, ok := p.Volumes[v.Source]; !ok {
				t.Errorf("%s: named volume %q is not declared", name, v.Source)
			}
		}
	}
}
