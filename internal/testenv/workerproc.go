package testenv

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// ServeWorker is the body of a test binary re-executed as a worker process (to be killed, or
// measured, on its own): it serves the NATS at url with the configuration config builds, prints
// "ready" once serving, and shuts down on SIGTERM or SIGINT. It returns the exit code.
func ServeWorker(url string, config func(*nats.Conn, *ffmpeg.Runner, job.Presets) worker.Config) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	nc, err := nats.Connect(url)
	if err != nil {
		return fail(err)
	}
	defer nc.Close()
	presets, err := job.ParsePresets(configs.Presets)
	if err != nil {
		return fail(err)
	}
	runner, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		return fail(err)
	}
	w, err := worker.New(config(nc, runner, presets))
	if err != nil {
		return fail(err)
	}
	if err := w.Start(ctx); err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.Shutdown(sctx)
	return 0
}
