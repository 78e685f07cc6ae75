// Package e2e benchmarks the whole worker against plain ffmpeg: transcode overhead and time to
// first byte, dispatch latency and throughput, worker memory against input size, and pipe
// throughput. Inputs are generated with lavfi so the benchmarks run from a fresh clone.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// workerEnv, set to a NATS URL, makes the test binary a worker process, so its memory can be
// measured on its own.
const workerEnv = "BENCH_WORKER_NATS"

func TestMain(m *testing.M) {
	if url := os.Getenv(workerEnv); url != "" {
		os.Exit(workerProcess(url))
	}
	code := m.Run()
	testenv.Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func workerProcess(url string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	nc, err := nats.Connect(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer nc.Close()
	presets, _ := job.ParsePresets(configs.Presets)
	runner, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w, err := worker.New(worker.Config{Conn: nc, FFmpeg: runner, Presets: presets, ID: "rss", Slots: 1, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := w.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = w.Shutdown(sctx)
	return 0
}
