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

	"github.com/transcoder/transcoder/ffmpeg"
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
	f.StringVar(&configPath, "config", os.Getenv("TRANSCODER_CONFIG"), "YAML config file (see configs/worker.example.yaml)")
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
	f.Int("slots", 0, "jobs at once (default half the CPUs)")
	f.Int("ring-buffers", 0, "1 MiB buffers in the ring (default slots x per-job need)")
	f.Duration("grace-period", 0, "time running jobs get to finish on SIGTERM (default 30s)")
	f.Duration("ack-wait", 0, "redelivery timeout without heartbeats (default 30s)")
	f.String("metrics-addr", "", "serve /metrics, /healthz and /readyz on HOST:PORT")
	f.String("log-format", "", "text or json")
	f.String("log-level", "", "debug, info, warn or error")
	return c
}

// serve runs a worker until ctx is done, then drains it: a second signal cuts the grace period.
func serve(ctx context.Context, cfg fileConfig, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return usageError{err}
	}
	presets, err := loadPresets(cfg.Presets)
	if err != nil {
		return err
	}
	runner, err := ffmpeg.New(cfg.ffmpegConfig())
	if err != nil {
		return fmt.Errorf("%w (install it: apt-get install -y ffmpeg)", err)
	}
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
	nc, err := connectNATS(url, "transcoder worker", auth,
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: we closed it
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrl()) }),
	)
	if err != nil {
		return err
	}
	defer nc.Close()
	w, err := worker.New(worker.Config{
		Conn: nc, FFmpeg: runner, Presets: presets, Logger: log, StorageConfig: cfg.storageConfig(),
		ID: cfg.ID, Slots: cfg.Slots, RingBuffers: cfg.RingBuffers, ChanDepth: cfg.ChanDepth,
		MaxOutputs: cfg.MaxOutputs, ProbeBytes: cfg.ProbeBytes, SpoolDir: cfg.SpoolDir,
		SpoolLimit: cfg.SpoolLimit, OverlayMaxBytes: cfg.OverlayMaxBytes, OverlayMaxPixels: cfg.OverlayMaxPixels, AckWait: cfg.AckWait, Heartbeat: cfg.Heartbeat,
		StallTimeout: cfg.StallTimeout, SplitMinDuration: cfg.SplitMinDuration, MaxDeliver: cfg.MaxDeliver, Backoff: cfg.Backoff,
		TimeoutFloor: cfg.TimeoutFloor, TimeoutFactor: cfg.TimeoutFactor, TimeoutCap: cfg.TimeoutCap,
		ProgressInterval: cfg.ProgressInterval, Limits: cfg.limits(), Encoders: cfg.Encoders,
	})
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
