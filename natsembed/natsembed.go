// Package natsembed runs an in-process nats-server with JetStream: the single-machine default
// of `transcoder worker`, the one-shot `transcoder run`, and the per-test servers.
package natsembed

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config says where the embedded server listens and keeps its data.
type Config struct {
	// Listen is HOST:PORT for client connections. Empty means no listener: only in-process
	// connections (Conn). Port 0 (or -1) picks a free port.
	Listen string
	// DataDir is the JetStream store directory. Required.
	DataDir string
	// ReadyTimeout bounds the wait for the server to accept connections; default 10s.
	ReadyTimeout time.Duration
}

// Server is a running embedded nats-server.
type Server struct {
	ns *server.Server
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("natsembed: DataDir is required")
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	opts := &server.Options{
		ServerName: "transcoder-embedded",
		JetStream:  true,
		StoreDir:   cfg.DataDir,
		NoSigs:     true,
		NoLog:      true,
		// Job payloads are small, but the default (1 MiB) is kept explicit: media never travels
		// inside messages.
		MaxPayload: 1 << 20,
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, portStr, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsembed: Listen %q: %w", cfg.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("natsembed: Listen %q: bad port", cfg.Listen)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(cfg.ReadyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: server not ready within %s (is %s already in use?)", cfg.ReadyTimeout, cfg.Listen)
	}
	return &Server{ns: ns}, nil
}

// URL is the client URL, or "" when the server does not listen.
func (s *Server) URL() string {
	if s.ns.Addr() == nil {
		return ""
	}
	return s.ns.ClientURL()
}

// Connect opens a client connection, in-process when the server does not listen.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	if s.URL() == "" {
		opts = append(opts, nats.InProcessServer(s.ns))
		return nats.Connect("", opts...)
	}
	return nats.Connect(s.URL(), opts...)
}

// Close shuts the server down and waits for it.
func (s *Server) Close() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}
