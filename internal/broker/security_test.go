package broker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tideline-dev/tideline/internal/broker"
	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// secureKafka starts a second Apache Kafka (scripts/kafka.sh with its own
// state and ports, sharing the jars) with a SASL_SSL listener whose
// certificate a throw-away CA signed, requiring a client certificate that
// CA signed (mutual TLS), and returns the listener's address.
func secureKafka(t *testing.T, certs testenv.Certs, users map[string]string) string {
	t.Helper()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	secure := t.TempDir()
	pem, err := os.ReadFile(certs.ServerPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for u, p := range users {
		lines = append(lines, u+" "+p)
	}
	for name, b := range map[string][]byte{"server.pem": pem, "ca.pem": ca, "users": []byte(strings.Join(lines, "\n") + "\n")} {
		if err := os.WriteFile(filepath.Join(secure, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ports := testenv.FreePorts(t, 3)
	libs := os.Getenv("TIDELINE_KAFKA_LIBS")
	if libs == "" {
		libs = filepath.Join(repo, ".state", "kafka", "libs")
	}
	env := append(os.Environ(),
		"TIDELINE_STATE_DIR="+t.TempDir(),
		"TIDELINE_KAFKA_LIBS="+libs,
		fmt.Sprintf("TIDELINE_KAFKA_PORT=%d", ports[0]),
		fmt.Sprintf("TIDELINE_KAFKA_CONTROLLER_PORT=%d", ports[1]),
		fmt.Sprintf("TIDELINE_KAFKA_SECURE_PORT=%d", ports[2]),
		"TIDELINE_KAFKA_SECURE_DIR="+secure,
		"KAFKA_HEAP_OPTS=-Xmx256m -Xms64m",
	)
	script := func(verb string) error {
		cmd := exec.Command(filepath.Join(repo, "scripts", "kafka.sh"), verb)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("scripts/kafka.sh %s: %w\n%s", verb, err, out)
		}
		return nil
	}
	t.Cleanup(func() {
		if err := script("stop"); err != nil {
			t.Error(err)
		}
	})
	if err := script("start"); err != nil {
		t.Fatalf("a SASL_SSL Apache Kafka is required (Java and the jars scripts/kafka.sh fetches): %v", err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[2])
}

// TestSASLSSL connects to Apache Kafka over SASL_SSL with each mechanism and
// a client certificate, creates tideline's topics and round-trips a record
// through clients built by broker.ClientOpts, as every component builds
// them; then checks that a wrong password, an untrusted CA and a client
// without a certificate are refused.
func TestSASLSSL(t *testing.T) {
	certs := testenv.Certificates(t)
	addr := secureKafka(t, certs, map[string]string{"tideline": "s3cret-pw", "other": "0ther-pw"})
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := func(mech, password, file, ca string) broker.Config {
		c := broker.DefaultConfig()
		c.Mode, c.Brokers = "kafka", []string{addr}
		c.TopicPrefix = testenv.Name(t) + "."
		c.Partitions = 1
		c.TLS = tlsconf.Config{Enabled: true, CAFile: ca, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}
		c.SASL = broker.SASLConfig{Mechanism: mech, User: "tideline", Password: password, PasswordFile: file}
		return c
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := config(mech, "", pwFile, certs.CA)
			if mech == "PLAIN" {
				c = config(mech, "s3cret-pw", "", certs.CA)
			}
			c.TopicPrefix += strings.ToLower(strings.ReplaceAll(mech, "-", "")) + "."
			roundTrip(t, c)
		})
	}
	refused := []struct {
		name string
		c    broker.Config
		want string
	}{
		{"wrong password", config("SCRAM-SHA-512", "not-it", "", certs.CA), "SASL"},
		{"untrusted CA", config("PLAIN", "s3cret-pw", "", certs.OtherCA), "certificate"},
		{"no client certificate", noClientCert(config("PLAIN", "s3cret-pw", "", certs.CA)), "bad certificate"},
	}
	for _, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			seeds, _, err := broker.Seeds(r.c)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			err = broker.EnsureTopics(ctx, seeds, r.c)
			if err == nil || !strings.Contains(err.Error(), r.want) {
				t.Fatalf("want a refusal mentioning %q, got %v", r.want, err)
			}
		})
	}
}

func noClientCert(c broker.Config) broker.Config {
	c.TLS.CertFile, c.TLS.KeyFile = "", ""
	return c
}

func roundTrip(t *testing.T, c broker.Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	seeds, stop, err := broker.Seeds(c)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := broker.EnsureTopics(ctx, seeds, c); err != nil {
		t.Fatal(err)
	}
	topic := c.MustTopic("web")
	prod, err := kgo.NewClient(broker.ClientOpts(seeds, testenv.Logger(t))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("over " + c.SASL.Mechanism)}).FirstErr(); err != nil {
		t.Fatalf("produce over SASL_SSL: %v", err)
	}
	cons, err := kgo.NewClient(append(broker.ClientOpts(seeds, testenv.Logger(t)),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("no record consumed over SASL_SSL: %v", errors.Join(err, fs.Err0()))
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("consume over SASL_SSL: %v", errs[0].Err)
		}
		if recs := fs.Records(); len(recs) > 0 {
			if got, want := string(recs[0].Value), "over "+c.SASL.Mechanism; got != want {
				t.Fatalf("consumed %q, want %q", got, want)
			}
			return
		}
	}
}
