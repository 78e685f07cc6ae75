package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// natsServer runs an in-process nats-server with JetStream on a free loopback port, with the
// options tweak sets (TLS, users), until the test ends; it returns the client URL.
func natsServer(t *testing.T, scheme string, tweak func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	tweak(opts)
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return scheme + "://" + ns.Addr().String()
}

// waitListed runs the command (`workers ...`) until its output names the worker: a worker
// advertises itself shortly after it says it is ready.
func waitListed(t *testing.T, id string, args ...string) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for {
		out, stderr, err := cli(t, args...)
		if err == nil && strings.Contains(out, id) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: %v %q %q; want %s listed", strings.Join(args, " "), err, out, stderr, id)
		}
	}
}

// pki is a CA and a server and a client certificate it signed, as PEM files.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func(name string) (*ecdsa.PrivateKey, string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, write(name, "PRIVATE KEY", der)
	}
	now := time.Now()
	caKey, _ := key("ca.key")
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "transcoder test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, keyPath := key(name + ".key")
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), keyPath
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestNATSTLS: against a server that requires TLS and verifies client certificates, a worker
// and a client command connect with --tls-ca, --tls-cert and --tls-key (the worker's from its
// config file); without them each fails, saying which option is missing.
func TestNATSTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	url := natsServer(t, "tls", func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.serverCert, KeyFile: p.serverKey, CaFile: p.ca, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 5
	})

	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	yaml := "tls_ca: " + p.ca + "\ntls_cert: " + p.clientCert + "\ntls_key: " + p.clientKey + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	startWorker(t, "--nats", url, "--config", cfg, "--id", "tls-worker", "--log-level", "warn")
	waitListed(t, "tls-worker", "workers", "--nats", url, "--tls-ca", p.ca, "--tls-cert", p.clientCert, "--tls-key", p.clientKey)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no tls options", nil, "--tls-ca"},
		{"no client certificate", []string{"--tls-ca", p.ca}, "--tls-cert"},
		{"half a key pair", []string{"--tls-ca", p.ca, "--tls-cert", p.clientCert}, "tls_cert and tls_key go together"},
		{"missing CA file", []string{"--tls-ca", filepath.Join(t.TempDir(), "none.pem")}, "tls_ca"},
		{"CA file without a certificate", []string{"--tls-ca", p.clientKey}, "no PEM certificate"},
	}
	for _, c := range cases {
		_, _, err := cli(t, append([]string{"workers", "--nats", url}, c.args...)...)
		t.Logf("%s: %v", c.name, err)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v; want it to mention %q", c.name, err, c.want)
		}
	}
}

// TestNATSNKey: against a server whose only user is an NKEY, a worker (--nkey) and a client
// command (TRANSCODER_NKEY-style flag) connect with the seed file; without it they are refused
// with a hint.
func TestNATSNKey(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	url := natsServer(t, "nats", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })

	startWorker(t, "--nats", url, "--nkey", seedFile, "--id", "nkey-worker", "--log-level", "warn")
	waitListed(t, "nkey-worker", "workers", "--nats", url, "--nkey", seedFile)

	if _, _, err := cli(t, "workers", "--nats", url); err == nil || !strings.Contains(err.Error(), "--nkey") ||
		!strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Errorf("without --nkey: err %v; want an authorization error that names --nkey", err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli(t, "workers", "--nats", url, "--nkey", otherFile); err == nil || !strings.Contains(err.Error(), "refused these credentials") {
		t.Errorf("unknown nkey: err %v", err)
	}
	if _, _, err := cli(t, "workers", "--nats", url, "--nkey", otherFile, "--creds", otherFile); err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("--nkey with --creds: err %v", err)
	}
	if _, _, err := cli(t, "workers", "--nats", url, "--nkey", filepath.Join(t.TempDir(), "none")); err == nil || !strings.Contains(err.Error(), "nkey") {
		t.Errorf("missing seed file: err %v", err)
	}
}
