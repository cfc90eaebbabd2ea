// Package tlsconf is the client TLS setting that tideline's connections to
// managed services share (kafka.tls, clickhouse.tls): PEM files of the
// authorities to trust and of an optional client certificate, the server
// name to verify, and an insecure switch that is off unless set.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config is one connection's TLS settings.
type Config struct {
	// Enabled turns TLS on (default false: the local servers speak plaintext).
	Enabled bool `koanf:"enabled"`
	// CAFile is a PEM file of the authorities to trust (default "": the
	// system's roots).
	CAFile string `koanf:"ca_file"`
	// CertFile is a PEM client certificate, for servers that authenticate
	// clients by certificate (default "": none); KeyFile is its key.
	CertFile string `koanf:"cert_file"`
	// KeyFile is the PEM key of CertFile (default "").
	KeyFile string `koanf:"key_file"`
	// ServerName is the name the server's certificate must carry (default
	// "": the host of the address dialed).
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify accepts any server certificate (default false).
	// Only for a test server: it gives up the protection TLS exists for.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// Validate says what to fix in c; section names it in messages ("kafka.tls").
func (c Config) Validate(section string) error {
	if !c.Enabled {
		if c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" || c.ServerName != "" || c.InsecureSkipVerify {
			return fmt.Errorf("%s: settings given but %s.enabled is false: set it to true", section, section)
		}
		return nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("%s: cert_file and key_file go together: give both or neither", section)
	}
	return nil
}

// Client returns the client TLS configuration c describes, nil when TLS is
// off. It reads the files each time it is called.
func (c Config) Client() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("CA file " + c.CAFile + " holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", c.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
