package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/natsembed"
	"github.com/transcoder/transcoder/worker"
)

func workerCommand(stdout, stderr io.Writer) *cobra.Command {
	var configPath string
	c := &cobra.Command{
		Use:   "worker",
		Short: "Serve transcode jobs from NATS (starts an embedded NATS server unless --nats is given)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(configPath, os.Environ(), cmd.Flags())
			if err != nil {
				return usageError{err}
			}
			return serve(cmd.Context(), cfg, stdout, stderr)
		},
	}
	f := c.Flags()
	registerSharedFlags(f, &configPath)
	f.String("nats", "", "NATS server URL(s), comma-separated; empty starts the embedded server")
	f.String("creds", "", "NATS credentials file")
	f.String("nkey", "", "file with a NATS user NKEY seed")
	f.String("tls-ca", "", "PEM CA to verify the NATS servers with")
	f.String("tls-cert", "", "PEM client certificate for NATS, with --tls-key")
	f.String("tls-key", "", "PEM private key of --tls-cert")
	f.String("listen", "", "embedded NATS listen address (default 127.0.0.1:4222)")
	f.String("data", "", "embedded NATS JetStream directory (default ~/.local/share/transcoder/nats)")
	f.String("presets", "", "extra presets YAML file")
	f.String("id", "", "worker id (default hostname-pid)")
	f.Duration("grace-period", 0, "time running jobs get to finish on SIGTERM (default 30s)")
	f.String("metrics-addr", "", "serve /metrics, /healthz and /readyz on HOST:PORT")
	return c
}

// serve runs a worker until ctx is done, then drains it: a second signal cuts the grace period.
func serve(ctx context.Context, cfg fileConfig, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return usageError{err}
	}
	setMaxProcs(log)
	presets, err := loadPresets(cfg.Presets)
	if err != nil {
		return err
	}
	runner, err := cfg.newRunner()
	if err != nil {
		return err
	}
	logSandbox(log, runner.SandboxStatus())
	url := cfg.NATS
	if url == "" {
		if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
			return err
		}
		ns, err := natsembed.Start(natsembed.Config{Listen: cfg.Listen, DataDir: cfg.Data})
		if err != nil {
			return err
		}
		defer ns.Close()
		url = ns.URL()
		log.Info("embedded NATS started", "url", url, "data", cfg.Data)
	}
	auth := cfg.natsAuth()
	if cfg.NATS == "" && auth != (natsAuth{}) {
		log.Warn("creds, nkey and tls_* apply to --nats servers; the embedded server is reached without them")
		auth = natsAuth{}
	}
	nc, err := connectWorker(url, auth, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := worker.New(cfg.workerConfig(nc, runner, presets, log))
	if err != nil {
		return usageError{err}
	}
	// Setup waits out a cluster that is still forming, within reason.
	sctx, scancel := context.WithTimeout(ctx, 2*time.Minute)
	err = w.Start(sctx)
	scancel()
	if err != nil {
		return err
	}
	if cfg.MetricsAddr != "" {
		stop, err := serveMetrics(cfg.MetricsAddr, w.Handler(), log)
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Fprintf(stdout, "worker %s ready on %s\nsubmit a job:  transcoder submit --nats %s INPUT --preset h264-720p -o OUTPUT.mp4 --wait\n",
		w.ID(), url, strings.Split(url, ",")[0])
	<-ctx.Done()
	log.Info("stopping: no new jobs; running jobs get the grace period", "grace_period", cfg.GracePeriod, "running", w.Running())
	grace, cancel := context.WithTimeout(context.Background(), cfg.GracePeriod)
	defer cancel()
	second := make(chan os.Signal, 1)
	signal.Notify(second, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(second)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-second:
			log.Warn("second signal: stopping running jobs now")
			cancel()
		case <-stopWatch:
		}
	}()
	if err := w.Shutdown(grace); err != nil {
		log.Warn("jobs were stopped and handed back", "err", err)
	}
	return nil
}

// connectWorker is the worker's NATS connection: it reconnects for ever, holds nothing back
// while reconnecting, and logs disconnects and refusals.
func connectWorker(url string, auth natsAuth, log *slog.Logger) (*nats.Conn, error) {
	return connectNATS(url, "transcoder worker", auth,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		// Nothing is held back while reconnecting to go out once reconnected: a worker cut off
		// from NATS has given up its jobs by then (worker.ErrLeaseLost), and a late state or
		// event of theirs would undo the worker that took them over.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrl()) }),
		// A refusal is a gap in the worker's NATS permissions (deploy/nats/server.conf): loud.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if pe := worker.AsPermissionError(err, urlUser(url)); pe != nil {
				log.Error("NATS refused an action of the worker", "err", pe)
				return
			}
			log.Warn("NATS", "err", err)
		}),
	)
}

// serveMetrics serves h on addr until stop, which waits for the server's goroutine.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", "err", err)
		}
	}()
	log.Info("metrics served", "addr", l.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	}, nil
}

func writeJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}
