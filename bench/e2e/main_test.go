// Package e2e benchmarks the whole worker against plain ffmpeg: transcode overhead and time to
// first byte, dispatch latency and throughput, worker memory against input size, and pipe
// throughput. Inputs are generated with lavfi so the benchmarks run from a fresh clone.
package e2e

import (
	"os"
	"testing"

	"github.com/nats-io/nats.go"

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
	os.Exit(testenv.Main(m))
}

func workerProcess(url string) int {
	return testenv.ServeWorker(url, func(nc *nats.Conn, runner *ffmpeg.Runner, presets job.Presets) worker.Config {
		return worker.Config{Conn: nc, FFmpeg: runner, Presets: presets, ID: "rss", Slots: 1, Logger: quietLogger()}
	})
}
