package worker_test

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// helperEnv, when set to a NATS URL, turns the test binary into a worker process that the kill
// tests can SIGKILL: a real separate process, as in production.
const helperEnv = "TRANSCODER_TEST_WORKER_NATS"

func TestMain(m *testing.M) {
	if url := os.Getenv(helperEnv); url != "" {
		os.Exit(helperWorker(url, os.Getenv("TRANSCODER_TEST_WORKER_ID")))
	}
	os.Exit(testenv.Main(m))
}

func helperWorker(url, id string) int {
	return testenv.ServeWorker(url, func(nc *nats.Conn, runner *ffmpeg.Runner, presets job.Presets) worker.Config {
		cfg := testConfig(nc, runner, presets, id, os.TempDir())
		if n, err := strconv.Atoi(os.Getenv("TRANSCODER_TEST_MAX_DELIVER")); err == nil {
			cfg.MaxDeliver = n
		}
		if n, err := strconv.Atoi(os.Getenv("TRANSCODER_TEST_SLOTS")); err == nil {
			cfg.Slots = n
		}
		if d, err := time.ParseDuration(os.Getenv("TRANSCODER_TEST_ACK_WAIT")); err == nil {
			cfg.AckWait = d
		}
		die := func(string) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		switch os.Getenv("TRANSCODER_TEST_DIE") {
		case "before-ack": // outputs committed, state and event out, no ack
			cfg.Hooks.BeforeAck = die
		case "before-event": // outputs committed, state out, no event, no ack
			cfg.Hooks.AfterState = die
		}
		return cfg
	})
}

// testConfig is a worker tuned for tests: short ack wait and quick retries, so redelivery after
// a kill takes seconds, not the production 30 s.
func testConfig(nc *nats.Conn, runner *ffmpeg.Runner, presets job.Presets, id, spool string) worker.Config {
	return worker.Config{
		Conn: nc, FFmpeg: runner, Presets: presets, ID: id, Slots: 2,
		SpoolDir: spool, AckWait: 3 * time.Second, Heartbeat: 500 * time.Millisecond,
		StallTimeout: 30 * time.Second, Backoff: []time.Duration{200 * time.Millisecond},
		FetchWait: 500 * time.Millisecond, ProgressInterval: 200 * time.Millisecond,
	}
}
