package broker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// SASLConfig is how tideline authenticates to brokers (kafka.sasl).
type SASLConfig struct {
	// Mechanism is "" (none, the default), "PLAIN", "SCRAM-SHA-256" or
	// "SCRAM-SHA-512". PLAIN sends the password itself: use it only over TLS.
	Mechanism string `koanf:"mechanism"`
	// User to authenticate as (default "").
	User string `koanf:"user"`
	// Password, best given as TIDELINE_KAFKA_SASL_PASSWORD (default "").
	// Never printed by `tideline config`, never logged.
	Password string `koanf:"password" secret:"true"`
	// PasswordFile is read for the password when Password is empty
	// (default ""), e.g. a mounted secret; a trailing newline is dropped.
	PasswordFile string `koanf:"password_file"`
}

func (c SASLConfig) validate() error {
	switch c.Mechanism {
	case "":
		if c.User != "" || c.Password != "" || c.PasswordFile != "" {
			return errors.New("kafka.sasl: user or password given without kafka.sasl.mechanism: set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
		return nil
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("kafka.sasl.mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.Mechanism)
	}
	if c.User == "" {
		return errors.New("kafka.sasl.user is empty")
	}
	if c.Password != "" && c.PasswordFile != "" {
		return errors.New("kafka.sasl: give the password or password_file, not both")
	}
	if c.Password == "" && c.PasswordFile == "" {
		return errors.New("kafka.sasl: no password: set TIDELINE_KAFKA_SASL_PASSWORD or kafka.sasl.password_file")
	}
	return nil
}

// password is the SASL password from the setting or its file.
func (c SASLConfig) password() (string, error) {
	if c.Password != "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafka.sasl.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// securityOpts are the kgo options of c's TLS and SASL settings.
func (c Config) securityOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	tc, err := c.TLS.Client()
	if err != nil {
		return nil, fmt.Errorf("kafka.tls: %w", err)
	}
	if tc != nil {
		// kgo.DialTLSConfig sets the server name per broker from its address
		// unless one is given, which is what a cluster of named brokers needs.
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.Mechanism == "" {
		return opts, nil
	}
	pw, err := c.SASL.password()
	if err != nil {
		return nil, err
	}
	switch c.SASL.Mechanism {
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: c.SASL.User, Pass: pw}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: pw}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: pw}.AsSha512Mechanism()))
	}
	return opts, nil
}

// Every Kafka client of the process is built by ClientOpts from its seed
// brokers alone, so the security of a cluster is kept with the addresses of
// its brokers: Secure records it once, after the configuration is loaded,
// and every client dialing one of those brokers uses it.
var (
	securityMu sync.RWMutex
	security   = map[string][]kgo.Opt{}
)

// Secure validates c's TLS and SASL settings, reads their files, and makes
// every client that ClientOpts builds for c.Brokers use them. It is a no-op
// for the embedded broker and for a cluster with neither TLS nor SASL.
func Secure(c Config) error {
	if c.Mode != "kafka" {
		return nil
	}
	opts, err := c.securityOpts()
	if err != nil || len(opts) == 0 {
		return err
	}
	securityMu.Lock()
	defer securityMu.Unlock()
	for _, b := range c.Brokers {
		security[b] = opts
	}
	return nil
}

func securityFor(seeds []string) []kgo.Opt {
	securityMu.RLock()
	defer securityMu.RUnlock()
	for _, s := range seeds {
		if o, ok := security[s]; ok {
			return o
		}
	}
	return nil
}

// tlsRefusal is the TLS reason a client of c's brokers failed with err, nil
// when TLS was not the cause (see tlsconf.Refusal).
func (c Config) tlsRefusal(ctx context.Context, seeds []string, err error) error {
	if err == nil || c.Mode != "kafka" || len(seeds) == 0 {
		return nil
	}
	tc, terr := c.TLS.Client()
	if terr != nil || tc == nil {
		return nil
	}
	tlsconf.VerifyHost(tc, seeds[0])
	return tlsconf.Refusal(context.WithoutCancel(ctx), tc, seeds[0], err, 5*time.Second)
}
