package plugin

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tideline-dev/tideline/internal/chdb"
	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// Settings is one data source's configuration: jsonData (what the config
// editor shows, grafana/app/src/types.ts TidelineDataSourceOptions) plus the
// password from the secure JSON.
type Settings struct {
	// Host of ClickHouse's native protocol (default 127.0.0.1).
	Host string `json:"host"`
	// Port of the native protocol (default 9000; 9440 is usual with TLS).
	Port int `json:"port"`
	// User (default "default"; a read-only user is enough).
	User string `json:"user"`
	// Database holding tideline's tables (default "tideline").
	Database string `json:"database"`
	// Secure connects with TLS (default false; provisioning can set it).
	// A CA or client certificate in the secure JSON implies it.
	Secure bool `json:"secure"`
	// TLSSkipVerify connects with TLS without verifying the server's
	// certificate; it implies Secure. Off unless set: it gives up what TLS
	// is for.
	TLSSkipVerify bool `json:"tlsSkipVerify"`
	// TLSServerName is the name the server's certificate must carry
	// (default "": the host).
	TLSServerName string `json:"tlsServerName"`
	// TLSCACert is the PEM of the authorities to trust (default "": the
	// system's roots); TLSClientCert and TLSClientKey are a PEM client
	// certificate and its key, for a server that requires one. All three
	// come only from the secure JSON (tlsCACert, tlsClientCert,
	// tlsClientKey, Grafana's names for them).
	TLSCACert, TLSClientCert, TLSClientKey string `json:"-"`
	// Password comes only from the decrypted secure JSON, never jsonData.
	Password string `json:"-"`
	// DialTimeout bounds connecting (default 5s; jsonData dialTimeoutSeconds).
	DialTimeout time.Duration `json:"-"`
	// QueryTimeout bounds one query (default 30s; jsonData queryTimeoutSeconds).
	QueryTimeout time.Duration `json:"-"`
}

// DefaultSettings are the values of keys jsonData leaves out.
func DefaultSettings() Settings {
	return Settings{
		Host:         "127.0.0.1",
		Port:         9000,
		User:         "default",
		Database:     "tideline",
		DialTimeout:  5 * time.Second,
		QueryTimeout: 30 * time.Second,
	}
}

// jsonSettings is jsonData as stored; numbers may arrive as JSON strings
// (hand-written provisioning files), so they are decoded leniently.
type jsonSettings struct {
	Host                string       `json:"host"`
	Port                flexibleInt  `json:"port"`
	User                string       `json:"user"`
	Database            string       `json:"database"`
	Secure              flexibleBool `json:"secure"`
	TLSSkipVerify       flexibleBool `json:"tlsSkipVerify"`
	TLSServerName       string       `json:"tlsServerName"`
	DialTimeoutSeconds  flexibleInt  `json:"dialTimeoutSeconds"`
	QueryTimeoutSeconds flexibleInt  `json:"queryTimeoutSeconds"`
}

type flexibleInt struct {
	set bool
	v   int
}

func (f *flexibleInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%s is not a whole number", b)
	}
	f.set, f.v = true, v
	return nil
}

type flexibleBool struct {
	set bool
	v   bool
}

func (f *flexibleBool) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%s is not true or false", b)
	}
	f.set, f.v = true, v
	return nil
}

// LoadSettings reads and validates a data source's settings: the one place
// that does.
func LoadSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	out := DefaultSettings()
	if len(s.JSONData) > 0 {
		var j jsonSettings
		if err := json.Unmarshal(s.JSONData, &j); err != nil {
			return Settings{}, fmt.Errorf("%w: jsonData: %w", ErrSettings, err)
		}
		if j.Host != "" {
			out.Host = strings.TrimSpace(j.Host)
		}
		if j.Port.set {
			out.Port = j.Port.v
		}
		if j.User != "" {
			out.User = j.User
		}
		if j.Database != "" {
			out.Database = j.Database
		}
		out.Secure = j.Secure.v
		out.TLSSkipVerify = j.TLSSkipVerify.v
		out.TLSServerName = strings.TrimSpace(j.TLSServerName)
		if j.DialTimeoutSeconds.set {
			out.DialTimeout = time.Duration(j.DialTimeoutSeconds.v) * time.Second
		}
		if j.QueryTimeoutSeconds.set {
			out.QueryTimeout = time.Duration(j.QueryTimeoutSeconds.v) * time.Second
		}
	}
	out.Password = s.DecryptedSecureJSONData["password"]
	out.TLSCACert = s.DecryptedSecureJSONData["tlsCACert"]
	out.TLSClientCert = s.DecryptedSecureJSONData["tlsClientCert"]
	out.TLSClientKey = s.DecryptedSecureJSONData["tlsClientKey"]
	if err := out.Validate(); err != nil {
		return Settings{}, err
	}
	return out, nil
}

// Validate says what to fix in the data source's configuration.
func (s Settings) Validate() error {
	var errs []error
	if s.Host == "" || strings.ContainsAny(s.Host, " /") || strings.Contains(s.Host, "://") {
		errs = append(errs, fmt.Errorf("host %q: give a host name or IP address, without scheme or port", s.Host))
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: give ClickHouse's native protocol port (1-65535, usually 9000, or 9440 with TLS)", s.Port))
	}
	if !chdb.ValidIdentifier(s.Database) {
		errs = append(errs, fmt.Errorf("database %q: give a database name of letters, digits and underscores", s.Database))
	}
	if s.DialTimeout <= 0 || s.QueryTimeout <= 0 {
		errs = append(errs, errors.New("dialTimeoutSeconds and queryTimeoutSeconds must be positive"))
	}
	if _, err := s.tls(); err != nil {
		errs = append(errs, fmt.Errorf("TLS (tlsCACert, tlsClientCert, tlsClientKey): %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrSettings, errors.Join(errs...))
	}
	return nil
}

// Addr is host:port.
func (s Settings) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// tls is the client TLS configuration of s, built as tideline's own
// clickhouse.tls is, nil without TLS.
func (s Settings) tls() (*tls.Config, error) {
	if !s.Secure && !s.TLSSkipVerify && s.TLSCACert == "" && s.TLSClientCert == "" && s.TLSClientKey == "" {
		return nil, nil
	}
	tc, err := tlsconf.PEM{
		CA: []byte(s.TLSCACert), Cert: []byte(s.TLSClientCert), Key: []byte(s.TLSClientKey),
		ServerName: s.TLSServerName, InsecureSkipVerify: s.TLSSkipVerify,
	}.Client()
	if err != nil {
		return nil, err
	}
	tlsconf.VerifyHost(tc, s.Addr())
	return tc, nil
}

// options are the clickhouse-go options of s: the native protocol (the one
// that works against ClickHouse 18.16), LZ4, a small pool, TLS when set.
func (s Settings) options() (*clickhouse.Options, error) {
	tc, err := s.tls()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSettings, err)
	}
	o := &clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     []string{s.Addr()},
		Auth: clickhouse.Auth{
			Database: s.Database,
			Username: s.User,
			Password: s.Password,
		},
		DialTimeout:     s.DialTimeout,
		ReadTimeout:     s.QueryTimeout,
		MaxOpenConns:    8,
		MaxIdleConns:    4,
		ConnMaxLifetime: 10 * time.Minute,
		Compression:     &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
		TLS:             tc,
	}
	return o, nil
}
