package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// natsAuth is how a process proves who it is to NATS and checks the servers it reaches: the
// same settings for the worker (config file keys creds, nkey, tls_ca, tls_cert, tls_key; their
// TRANSCODER_* variables; flags) and the client commands (flags and the same variables). A user
// and password go in the URL (nats://user:pass@host:4222); several URLs, comma-separated,
// name the servers of a cluster.
type natsAuth struct {
	Creds   string // a .creds file: user JWT and NKEY seed (decentralized accounts)
	NKey    string // a file holding a user NKEY seed (SU...)
	TLSCA   string // PEM CA certificates to verify the servers with, instead of the system's
	TLSCert string // PEM client certificate, for servers that verify clients; with TLSKey
	TLSKey  string // its PEM private key
}

// natsAuth is the part of the worker configuration that natsOptions takes.
func (c fileConfig) natsAuth() natsAuth {
	return natsAuth{Creds: c.Creds, NKey: c.NKey, TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey}
}

// natsOptions checks a and turns it into connect options, after name and a 5 s connect
// timeout. Every file is read here, so a wrong path or a bad file is an error that names its
// setting, not a failure to connect.
func natsOptions(name string, a natsAuth) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(name), nats.Timeout(5 * time.Second)}
	if a.Creds != "" && a.NKey != "" {
		return nil, errors.New("creds and nkey are two ways to authenticate: give one")
	}
	if a.Creds != "" {
		if _, err := os.ReadFile(a.Creds); err != nil {
			return nil, fmt.Errorf("creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.Creds))
	}
	if a.NKey != "" {
		o, err := nats.NkeyOptionFromSeed(a.NKey)
		if err != nil {
			return nil, fmt.Errorf("nkey %s: %w", a.NKey, err)
		}
		opts = append(opts, o)
	}
	if a.TLSCA != "" {
		pem, err := os.ReadFile(a.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca %s: no PEM certificate in it", a.TLSCA)
		}
		opts = append(opts, nats.RootCAs(a.TLSCA))
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return nil, errors.New("tls_cert and tls_key go together: give both or neither")
	}
	if a.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(a.TLSCert, a.TLSKey); err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		opts = append(opts, nats.ClientCert(a.TLSCert, a.TLSKey))
	}
	return opts, nil
}

// connectNATS connects to the servers at urls (comma-separated) with a and extra options; a
// failure says what to set when the cause is authentication or TLS.
func connectNATS(urls, name string, a natsAuth, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := natsOptions(name, a)
	if err != nil {
		return nil, usageError{err}
	}
	nc, err := nats.Connect(urls, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w%s", urls, err, connectHint(err, a))
	}
	return nc, nil
}

// connectHint is what to do about a failed connection, or "".
func connectHint(err error, a natsAuth) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	msg := err.Error()
	switch {
	case errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked):
		if a.Creds == "" && a.NKey == "" {
			return " (the server wants credentials: --creds FILE, --nkey FILE, or user:password@ in the URL)"
		}
		return " (the server refused these credentials)"
	case errors.As(err, &unknownCA):
		return " (the server's certificate is not signed by a trusted CA: give its CA with --tls-ca FILE)"
	case errors.As(err, &hostErr):
		return " (the server's certificate does not name the host in the URL)"
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate"):
		return " (the server wants a client certificate: --tls-cert FILE --tls-key FILE)"
	case a.TLSCert == "" && strings.Contains(msg, "tls") && (strings.Contains(msg, "after TLS handshake") ||
		strings.Contains(msg, "broken pipe") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "EOF")):
		// With TLS 1.3 the server refuses a missing client certificate after the handshake:
		// depending on timing the client sees the alert, or only a closed connection.
		return " (the server closed the connection after the TLS handshake: it probably wants a client certificate: --tls-cert FILE --tls-key FILE)"
	case errors.Is(err, nats.ErrSecureConnWanted):
		return " (the server does not offer TLS: drop the tls options or use a nats:// URL of a TLS server)"
	}
	return ""
}
