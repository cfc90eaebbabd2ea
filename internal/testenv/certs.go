package testenv

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Certs are PEM files of a throw-away authority and what it signed, for
// tests of TLS against the real servers.
type Certs struct {
	// CA is the authority's certificate, to trust.
	CA string
	// ServerCert and ServerKey are valid for 127.0.0.1 and localhost;
	// ServerPEM holds both (the key first), as Kafka's PEM keystore wants.
	ServerCert, ServerKey, ServerPEM string
	// ClientCert and ClientKey are a client certificate of the same CA.
	ClientCert, ClientKey string
	// OtherCA is an authority that signed none of them.
	OtherCA string
}

// Certificates makes a self-signed authority, a server and a client
// certificate in a directory of the test's.
func Certificates(t testing.TB) Certs {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, blocks ...*pem.Block) string {
		t.Helper()
		var b []byte
		for _, blk := range blocks {
			b = append(b, pem.EncodeToMemory(blk)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() (*rsa.PrivateKey, *pem.Block) {
		t.Helper()
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	serial := int64(1)
	sign := func(tmpl, parent *x509.Certificate, pub *rsa.PublicKey, signer *rsa.PrivateKey) (*x509.Certificate, *pem.Block) {
		t.Helper()
		serial++
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore = time.Now().Add(-time.Hour)
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, &pem.Block{Type: "CERTIFICATE", Bytes: der}
	}
	authority := func(name string) (*x509.Certificate, *rsa.PrivateKey, *pem.Block) {
		k, _ := newKey()
		c, blk := sign(&x509.Certificate{
			Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}, nil, &k.PublicKey, k)
		return c, k, blk
	}
	ca, caKey, caPEM := authority("tideline test CA")
	_, _, otherPEM := authority("another CA")
	sk, skPEM := newKey()
	_, scPEM := sign(&x509.Certificate{
		Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &sk.PublicKey, caKey)
	ck, ckPEM := newKey()
	_, ccPEM := sign(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "tideline"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, &ck.PublicKey, caKey)
	return Certs{
		CA:         write("ca.pem", caPEM),
		ServerCert: write("server.crt", scPEM),
		ServerKey:  write("server.key", skPEM),
		ServerPEM:  write("server.pem", skPEM, scPEM),
		ClientCert: write("client.crt", ccPEM),
		ClientKey:  write("client.key", ckPEM),
		OtherCA:    write("other-ca.pem", otherPEM),
	}
}

// Pool trusts c's authority, as a client of its server does.
func (c Certs) Pool(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(c.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", c.CA)
	}
	return pool
}

// FreeAddr returns a 127.0.0.1 address whose port was free a moment ago,
// for a server the test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePorts(t, 1)[0])
}

// FreePorts returns n TCP ports on 127.0.0.1 that were free a moment ago.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}
