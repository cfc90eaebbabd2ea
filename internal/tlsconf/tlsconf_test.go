package tlsconf_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tideline-dev/tideline/internal/testenv"
	"github.com/tideline-dev/tideline/internal/tlsconf"
)

// TestRefusal serves TLS that requires a client certificate and checks that
// Refusal names the server's alert for a client without one, even when the
// failure it is given is the reset a client sees when it wrote first, and
// that it finds nothing to say for a client the server accepts or for an
// error that is not a cut-off connection.
func TestRefusal(t *testing.T) {
	certs := testenv.Certificates(t)
	serverCert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = io.Copy(io.Discard, c)
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	client := func(withCert bool) *tls.Config {
		c := tlsconf.Config{Enabled: true, CAFile: certs.CA}
		if withCert {
			c.CertFile, c.KeyFile = certs.ClientCert, certs.ClientKey
		}
		tc, err := c.Client()
		if err != nil {
			t.Fatal(err)
		}
		tlsconf.VerifyHost(tc, addr)
		return tc
	}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	ctx := context.Background()

	why := tlsconf.Refusal(ctx, client(false), addr, reset, 3*time.Second)
	if why == nil || !strings.Contains(why.Error(), "certificate required") {
		t.Fatalf("no client certificate after a reset: want the server's alert, got %v", why)
	}
	if why := tlsconf.Refusal(ctx, client(true), addr, reset, 300*time.Millisecond); why != nil {
		t.Fatalf("an accepted client: want no TLS reason, got %v", why)
	}
	if why := tlsconf.Refusal(ctx, client(false), addr, errors.New("code: 516, authentication failed"), 3*time.Second); why != nil {
		t.Fatalf("a server's answer: want no TLS reason, got %v", why)
	}
	alert := errors.New("remote error: tls: bad certificate")
	if why := tlsconf.Refusal(ctx, client(true), addr, alert, 3*time.Second); why != alert {
		t.Fatalf("a TLS error: want it back, got %v", why)
	}
	if why := tlsconf.Refusal(ctx, nil, addr, reset, 3*time.Second); why != nil {
		t.Fatalf("no TLS: want no TLS reason, got %v", why)
	}
}
