package compose

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/tideline-dev/tideline/grafana/plugin"
	"github.com/tideline-dev/tideline/ingest"
	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/config"
	"github.com/tideline-dev/tideline/trigger"
)

var root = filepath.Join("..", "..")

func load(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	return loadFiles(t, []string{"docker-compose.yml"}, profiles...)
}

// loadFiles loads the compose files, later ones overriding earlier ones
// as `docker compose -f ... -f ...` does.
func loadFiles(t *testing.T, files []string, profiles ...string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(abs, f))
	}
	details, err := loader.LoadConfigFiles(context.Background(), paths, abs)
	if err != nil {
		t.Fatal(err)
	}
	// The variables a user may set are left to their defaults.
	details.Environment = types.Mapping{}
	p, err := loader.LoadWithContext(context.Background(), *details, func(o *loader.Options) {
		o.SetProjectName("tideline", true)
		o.ResolvePaths = true
		o.Profiles = profiles
	})
	if err != nil {
		t.Fatalf("%s does not load: %v", strings.Join(files, " + "), err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

func env(s types.ServiceConfig, key string) string {
	if v := s.Environment[key]; v != nil {
		return *v
	}
	return ""
}

// settings is grafana/compose/tideline.yaml decoded and validated by the
// same code the tideline binary runs.
type settings struct {
	ch        chdb.Config
	kafka     broker.Config
	collector ingest.CollectorConfig
	loader    ingest.LoaderConfig
}

func tidelineSettings(t *testing.T) settings {
	t.Helper()
	s := settings{ch: chdb.DefaultConfig(), kafka: broker.DefaultConfig(), collector: ingest.DefaultCollectorConfig(), loader: ingest.DefaultLoaderConfig()}
	err := config.Load("tideline.yaml", nil, nil, config.Sections{"clickhouse": &s.ch, "kafka": &s.kafka, "collector": &s.collector, "loader": &s.loader})
	if err != nil {
		t.Fatalf("tideline.yaml: %v", err)
	}
	for name, err := range map[string]error{"clickhouse": s.ch.Validate(), "kafka": s.kafka.Validate(), "collector": s.collector.Validate(), "loader": s.loader.Validate()} {
		if err != nil {
			t.Errorf("tideline.yaml %s: %v", name, err)
		}
	}
	return s
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return p
}

func TestComposeLoads(t *testing.T) {
	p := load(t)
	for _, name := range []string{"kafka", "clickhouse", "migrate", "collector", "loader", "evaluator", "poller", "grafana", "grafana-plugin"} {
		service(t, p, name)
	}
	if _, ok := p.Services["demo"]; ok {
		t.Error("the demo workload should run only with --profile demo")
	}
	demo := load(t, "demo")
	if got := service(t, demo, "demo").Command; !slices.Equal(got, types.ShellCommand{"demo", "--target", "http://collector:8088"}) {
		t.Errorf("demo command %v", got)
	}
}

// TestReferencedFilesExist: every bind mount, build context and Dockerfile
// target the compose file names is in the repository.
func TestReferencedFilesExist(t *testing.T) {
	p := load(t, "demo")
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				if _, ok := p.Volumes[v.Source]; !ok {
					t.Errorf("%s: named volume %q is not declared", name, v.Source)
				}
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s: %v", name, v.Source, err)
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(s.Build.Context, "Dockerfile")); err != nil {
				t.Errorf("%s builds %s: %v", name, s.Build.Context, err)
			}
			if !regexp.MustCompile(`(?m)^FROM \S+ AS ` + regexp.QuoteMeta(s.Build.Target) + `$`).Match(dockerfile) {
				t.Errorf("%s builds target %q, which the Dockerfile does not have", name, s.Build.Target)
			}
		}
		if s.Image == "" || strings.HasSuffix(s.Image, ":latest") || !strings.Contains(s.Image, ":") {
			t.Errorf("%s: image %q should be pinned to a tag", name, s.Image)
		}
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionHealthy && p.Services[dep].HealthCheck == nil {
				t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
			}
		}
	}
}

// TestAddressesAgree: the ports and hosts in tideline.yaml, the compose
// services and Grafana's provisioning are the same ones.
func TestAddressesAgree(t *testing.T) {
	p := load(t, "demo")
	s := tidelineSettings(t)

	// ClickHouse: the services and Grafana use the native port of the clickhouse service.
	ch := service(t, p, "clickhouse")
	if host, chPort, _ := net.SplitHostPort(s.ch.Addr); host != "clickhouse" || chPort != "9000" {
		t.Errorf("tideline.yaml clickhouse.addr %q: want clickhouse:9000", s.ch.Addr)
	}
	if env(ch, "CLICKHOUSE_USER") != s.ch.User || env(ch, "CLICKHOUSE_DB") != s.ch.Database {
		t.Errorf("ClickHouse user/db %s/%s, tideline.yaml %s/%s", env(ch, "CLICKHOUSE_USER"), env(ch, "CLICKHOUSE_DB"), s.ch.User, s.ch.Database)
	}
	if !publishes(ch, 9000) {
		t.Error("clickhouse does not expose 9000")
	}

	// Kafka: the advertised in-network listener is what tideline connects to.
	kafka := service(t, p, "kafka")
	if s.kafka.Mode != "kafka" || len(s.kafka.Brokers) != 1 || !strings.Contains(env(kafka, "KAFKA_ADVERTISED_LISTENERS"), "PLAINTEXT://"+s.kafka.Brokers[0]) {
		t.Errorf("tideline.yaml kafka %+v does not match KAFKA_ADVERTISED_LISTENERS %q", s.kafka, env(kafka, "KAFKA_ADVERTISED_LISTENERS"))
	}

	// Collector: published port, listen address, demo target, health check port.
	collector := service(t, p, "collector")
	cport := port(t, s.collector.Addr)
	if !publishes(collector, atoi(cport)) {
		t.Errorf("collector listens on %s but does not publish it", cport)
	}
	demo := service(t, p, "demo")
	target, err := url.Parse(demo.Command[2])
	if err != nil || target.Hostname() != "collector" || target.Port() != cport {
		t.Errorf("demo target %q, collector listens on %s", demo.Command[2], s.collector.Addr)
	}
	// The evaluator's and the poller's sections are read as plain YAML: this
	// test checks addresses, their packages check their settings.
	var raw struct {
		Materialize struct {
			MetricsAddr  string `yaml:"metrics_addr"`
			AudiencesDir string `yaml:"audiences_dir"`
		} `yaml:"materialize"`
		Trigger struct {
			MetricsAddr  string `yaml:"metrics_addr"`
			CampaignsDir string `yaml:"campaigns_dir"`
		} `yaml:"trigger"`
	}
	readYAML(t, "tideline.yaml", &raw)
	for name, dir := range map[string]string{"evaluator": raw.Materialize.AudiencesDir, "poller": raw.Trigger.CampaignsDir} {
		mounted := false
		for _, v := range service(t, p, name).Volumes {
			mounted = mounted || v.Target == dir
		}
		if !mounted {
			t.Errorf("%s reads definitions from %s, which is not mounted", name, dir)
		}
	}
	for name, metrics := range map[string]string{"collector": s.collector.MetricsAddr, "loader": s.loader.MetricsAddr,
		"evaluator": raw.Materialize.MetricsAddr, "poller": raw.Trigger.MetricsAddr} {
		hc := service(t, p, name).HealthCheck
		if hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "127.0.0.1:"+port(t, metrics)+"/healthz") {
			t.Errorf("%s health check %v does not probe its metrics address %s", name, hc, metrics)
		}
		if !strings.HasPrefix(metrics, "0.0.0.0:") {
			t.Errorf("%s metrics address %s: listen on all interfaces inside the container", name, metrics)
		}
	}

	// Grafana: the plugin is mounted under its id and allowed unsigned; the
	// provisioned data source points at the same ClickHouse.
	g := service(t, p, "grafana")
	if !strings.Contains(env(g, "GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS"), plugin.PluginID) {
		t.Error("grafana does not allow the unsigned plugin")
	}
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		mounts[v.Target] = v.Source
	}
	if mounts["/var/lib/grafana/plugins/"+plugin.PluginID] != "grafana-plugin" {
		t.Errorf("grafana mounts %v: want the plugin volume at /var/lib/grafana/plugins/%s", mounts, plugin.PluginID)
	}
	for _, m := range service(t, p, "grafana-plugin").Volumes {
		if m.Source == "grafana-plugin" && m.Target != "/target" {
			t.Errorf("grafana-plugin fills the volume at %s; its Dockerfile command copies to /target", m.Target)
		}
	}

	var ds struct {
		Datasources []struct {
			UID            string            `yaml:"uid"`
			Type           string            `yaml:"type"`
			JSONData       map[string]any    `yaml:"jsonData"`
			SecureJSONData map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/datasources/tideline.yaml"), &ds)
	if len(ds.Datasources) != 1 {
		t.Fatalf("%d provisioned data sources", len(ds.Datasources))
	}
	d := ds.Datasources[0]
	if d.UID != "tideline" || d.Type != plugin.PluginID {
		t.Errorf("data source uid %q type %q", d.UID, d.Type)
	}
	if d.JSONData["host"] != "clickhouse" || d.JSONData["port"] != 9000 || d.JSONData["database"] != s.ch.Database {
		t.Errorf("data source jsonData %v: want clickhouse:9000/%s", d.JSONData, s.ch.Database)
	}
	for _, ref := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllStringSubmatch(strings.Join([]string{d.JSONData["user"].(string), d.SecureJSONData["password"]}, " "), -1) {
		if env(g, ref[1]) == "" {
			t.Errorf("provisioning uses ${%s}, which the grafana service does not set", ref[1])
		}
	}

	var dash struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, filepath.Join(root, "grafana/provisioning/dashboards/tideline.yaml"), &dash)
	src, ok := mounts[dash.Providers[0].Options.Path]
	if !ok {
		t.Fatalf("dashboards provider reads %s, which grafana does not mount", dash.Providers[0].Options.Path)
	}
	jsons, _ := filepath.Glob(filepath.Join(src, "*.json"))
	if len(jsons) < 2 {
		t.Errorf("the dashboards mount %s has %d dashboards", src, len(jsons))
	}
	home := env(g, "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
	if _, err := os.Stat(filepath.Join(src, strings.TrimPrefix(home, dash.Providers[0].Options.Path))); err != nil {
		t.Errorf("home dashboard %s: %v", home, err)
	}
}

// TestPluginExecutableName: Grafana runs plugin.json's executable with the
// platform appended; the Dockerfile must build that name.
func TestPluginExecutableName(t *testing.T) {
	var pj struct {
		ID         string `json:"id"`
		Executable string `json:"executable"`
		Backend    bool   `json:"backend"`
		Streaming  bool   `json:"streaming"`
	}
	b, err := os.ReadFile(filepath.Join(root, "grafana/app/src/plugin.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pj); err != nil {
		t.Fatal(err)
	}
	if pj.ID != plugin.PluginID || !pj.Backend || !pj.Streaming {
		t.Errorf("plugin.json %+v: want id %s, backend and streaming", pj, plugin.PluginID)
	}
	dockerfile, _ := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if !strings.Contains(string(dockerfile), "/"+pj.Executable+"_${TARGETOS}_${TARGETARCH} ./cmd/"+pj.Executable) {
		t.Errorf("the Dockerfile does not build %s_<os>_<arch> from ./cmd/%s", pj.Executable, pj.Executable)
	}
}

func publishes(s types.ServiceConfig, target int) bool {
	for _, p := range s.Ports {
		if int(p.Target) == target {
			return true
		}
	}
	return false
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestWebhooksReachTheReceiver: the poller can sign every shipped campaign
// (each secret_env is set to a valid whsec_ secret), its webhooks go to the
// demo receiver, and the receiver verifies with the same secrets.
func TestWebhooksReachTheReceiver(t *testing.T) {
	p := load(t)
	poller, recv := service(t, p, "poller"), service(t, p, "receiver")
	campaigns, err := trigger.LoadCampaigns(filepath.Join(root, "trigger", "campaigns"))
	if err != nil {
		t.Fatal(err)
	}
	accepted := map[string]bool{}
	var addr string
	for i, arg := range recv.Command {
		switch {
		case arg == "--secret-env" && i+1 < len(recv.Command):
			accepted[recv.Command[i+1]] = true
		case arg == "--addr" && i+1 < len(recv.Command):
			addr = recv.Command[i+1]
		}
	}
	webhooks := 0
	for _, c := range campaigns {
		if c.Deliver.Webhook == nil {
			continue
		}
		webhooks++
		name := c.Deliver.Webhook.SecretEnv
		secret := env(poller, name)
		if _, err := trigger.ParseSecret(secret); err != nil {
			t.Errorf("campaign %s: the poller's %s is not a usable secret (%v): the poller would not start", c.ID, name, err)
		}
		if !accepted[name] || env(recv, name) != secret {
			t.Errorf("campaign %s: the receiver does not verify with %s", c.ID, name)
		}
	}
	if webhooks == 0 {
		t.Fatal("no shipped campaign delivers a webhook: nothing checked")
	}
	u, err := url.Parse(env(poller, "TIDELINE_TRIGGER_WEBHOOK_URL_OVERRIDE"))
	if err != nil || u.Hostname() != "receiver" || u.Port() != port(t, addr) {
		t.Errorf("the poller delivers to %q; the receiver listens on %s", env(poller, "TIDELINE_TRIGGER_WEBHOOK_URL_OVERRIDE"), addr)
	}
	if d, ok := poller.DependsOn["receiver"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("the poller does not wait for the receiver to be healthy")
	}
	if hc := recv.HealthCheck; hc == nil || !strings.Contains(strings.Join(hc.Test, " "), "127.0.0.1:"+port(t, addr)+"/healthz") {
		t.Errorf("receiver health check %v does not probe its address %s", recv.HealthCheck, addr)
	}
}

// TestStartOrder: the schema is applied once per `up` by a one-shot migrate
// service that waits for ClickHouse to answer, and everything that reads
// or writes tideline's tables starts only after it finished successfully;
// what a service waits for to be healthy has a health check that probes
// readiness, not only a running process.
func TestStartOrder(t *testing.T) {
	p := load(t, "demo")
	m := service(t, p, "migrate")
	if !slices.Equal([]string(m.Command), []string{"migrate"}) || m.Restart != "no" {
		t.Errorf("migrate runs %v with restart %q: want the one-shot `tideline migrate`, not restarted", m.Command, m.Restart)
	}
	if d, ok := m.DependsOn["clickhouse"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("migrate does not wait for ClickHouse to be healthy")
	}
	for _, name := range []string{"loader", "evaluator", "poller", "grafana"} {
		if d, ok := service(t, p, name).DependsOn["migrate"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s does not wait for migrate to complete successfully", name)
		}
	}
	for _, name := range []string{"loader", "poller", "collector"} {
		if d, ok := service(t, p, name).DependsOn["kafka"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s does not wait for Kafka to be healthy", name)
		}
	}
	if d, ok := service(t, p, "demo").DependsOn["collector"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Error("the demo does not wait for the collector to be healthy")
	}
	// Readiness: ClickHouse answers its ping, Kafka its API versions
	// request, Grafana its health API; the tideline services' /healthz
	// answers only while their ClickHouse (Kafka for the collector) does,
	// which TestAddressesAgree and the telemetry package check.
	for name, want := range map[string]string{"clickhouse": "/ping", "kafka": "kafka-broker-api-versions", "grafana": "/api/health"} {
		hc := service(t, p, name).HealthCheck
		if hc == nil || !strings.Contains(strings.Join(hc.Test, " "), want) {
			t.Errorf("%s health check %v does not probe %s", name, hc, want)
		}
	}
}
