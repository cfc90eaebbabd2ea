// Package tlsconf is the client TLS setting that tideline's connections to
// managed services share (kafka.tls, clickhouse.tls): PEM files of the
// authorities to trust and of an optional client certificate, the server
// name to verify, and an insecure switch that is off unless set.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
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
	p := PEM{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify}
	if c.CAFile != "" {
		b, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		p.CA = b
	}
	if c.CertFile != "" {
		cert, err := os.ReadFile(c.CertFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", c.CertFile, err)
		}
		key, err := os.ReadFile(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate key %s: %w", c.KeyFile, err)
		}
		p.Cert, p.Key = cert, key
	}
	tc, err := p.Client()
	if err != nil {
		return nil, fmt.Errorf("ca_file %q, cert_file %q: %w", c.CAFile, c.CertFile, err)
	}
	return tc, nil
}

// PEM is a client TLS configuration whose authorities and client
// certificate are given as PEM text rather than files, as a Grafana data
// source's secure JSON holds them.
type PEM struct {
	// CA holds the authorities to trust (empty: the system's roots).
	CA []byte
	// Cert and Key are a client certificate and its key (empty: none).
	Cert, Key []byte
	// ServerName is the name the server's certificate must carry (empty:
	// the host dialed, see VerifyHost).
	ServerName string
	// InsecureSkipVerify accepts any server certificate.
	InsecureSkipVerify bool
}

// Client returns the client TLS configuration p describes.
func (p PEM) Client() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: p.ServerName, InsecureSkipVerify: p.InsecureSkipVerify} //nolint:gosec // off unless asked for
	if len(p.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(p.CA) {
			return nil, errors.New("the CA certificate holds no PEM certificate")
		}
		cfg.RootCAs = pool
	}
	if (len(p.Cert) == 0) != (len(p.Key) == 0) {
		return nil, errors.New("a client certificate and its key go together: give both or neither")
	}
	if len(p.Cert) > 0 {
		cert, err := tls.X509KeyPair(p.Cert, p.Key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// VerifyHost makes tc verify the host of addr when it names no server:
// clickhouse-go dials with the configuration as given, where a browser
// would verify the host it dialed.
func VerifyHost(tc *tls.Config, addr string) {
	if tc == nil || tc.ServerName != "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err == nil {
		tc.ServerName = host
	}
}

// Refusal returns the TLS reason a connection to addr failed with err
// (an alert such as "tls: certificate required", or a server certificate
// this side cannot verify), or nil when TLS was not the cause. Under TLS
// 1.3 a server checks the client's certificate after the client's handshake
// has already returned, so a client that goes on to write its first request
// often reads a reset connection instead of the alert; Refusal then dials
// once more and writes nothing, and so reads the alert itself.
func Refusal(ctx context.Context, tc *tls.Config, addr string, err error, wait time.Duration) error {
	if tc == nil || err == nil {
		return nil
	}
	if why := tlsError(err); why != nil {
		return why
	}
	if !cutOff(err) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	d := tls.Dialer{Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return tlsError(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil
	}
	_, err = conn.Read(make([]byte, 1))
	return tlsError(err)
}

// tlsError is err when TLS itself refused (an alert from the server or a
// certificate this side could not verify), nil otherwise.
func tlsError(err error) error {
	if err == nil {
		return nil
	}
	var alert tls.AlertError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &alert) || errors.As(err, &verify) || strings.Contains(err.Error(), "tls: ") {
		return err
	}
	return nil
}

// cutOff reports whether err is a connection the server ended (a reset, a
// broken pipe, an early end of stream) rather than an answer it gave.
func cutOff(err error) bool {
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "connection reset") || strings.Contains(msg, "broken pipe") || strings.HasSuffix(msg, "EOF")
}
