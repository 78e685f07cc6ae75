package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// splitEnv, set to a NATS URL, makes the test binary one worker of BenchmarkSplit (id from
// splitIDEnv): one slot, one encoder thread, production settings otherwise.
const (
	splitEnv   = "BENCH_SPLIT_NATS"
	splitIDEnv = "BENCH_SPLIT_ID"
)

func init() {
	if url := os.Getenv(splitEnv); url != "" {
		os.Exit(testenv.ServeWorker(url, func(nc *nats.Conn, _ *ffmpeg.Runner, presets job.Presets) worker.Config {
			r, err := ffmpeg.New(ffmpeg.Config{Threads: 1})
			if err != nil {
				panic(err)
			}
			return worker.Config{Conn: nc, FFmpeg: r, Presets: presets, ID: os.Getenv(splitIDEnv), Slots: 1, Logger: quietLogger()}
		}))
	}
}

// BenchmarkSplit runs a 60 s h264-480p job, 10 s chunks, three ways side by side in each
// iteration, on worker processes pinned to one core each (taskset) with one encoder thread:
// whole on one worker (the reference), split on that one worker (what split and stitch cost),
// and split on two workers (the speed-up). It reports each wall time, publish to succeeded
// event, and the two ratios to the whole run; and the one-worker ratio with the default chunk
// (30 s), where fewer chunks pay their start.
func BenchmarkSplit(b *testing.B) {
	in := filepath.Join("..", "..", "..", "shared", "media", "bbb-640x360-60s.mp4")
	if _, err := os.Stat(in); err != nil {
		in = testenv.MakeClip(b, testenv.Clip{Seconds: 60, Size: "640x360", Rate: 24, Extra: []string{"-g", "240"}})
	}
	in, _ = filepath.Abs(in)
	ns := startFleetNATS(b)
	nc, err := nats.Connect(ns.url)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	cl, err := worker.NewClient(context.Background(), nc)
	if err != nil {
		b.Fatal(err)
	}
	stop0 := startSplitWorker(b, ns.url, 0)
	defer stop0()
	dir := b.TempDir()
	run := func(name, mode string, chunk time.Duration) time.Duration {
		out := filepath.Join(dir, name+".mp4")
		defer func() { _ = os.Remove(out) }()
		j := &job.Job{Input: fileURL(in), Preset: "h264-480p", Outputs: []job.Output{{URL: fileURL(out)}},
			Split: &job.Split{Mode: mode, Chunk: job.Duration(chunk)}}
		start := time.Now()
		id, err := cl.Submit(context.Background(), j)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		ev, err := cl.Watch(ctx, id, func(job.Event) {})
		if err != nil || ev.Type != job.EventSucceeded {
			b.Fatalf("%s: %v %s %+v", name, err, ev.Type, ev.Error)
		}
		return time.Since(start)
	}
	var whole, split1, split1d, split2 []time.Duration
	b.ResetTimer()
	for range b.N {
		whole = append(whole, run("whole", job.SplitOff, 10*time.Second))
		split1 = append(split1, run("split1", job.SplitOn, 10*time.Second))
		split1d = append(split1d, run("split1d", job.SplitOn, job.DefaultChunk))
		stop1 := startSplitWorker(b, ns.url, 1)
		split2 = append(split2, run("split2", job.SplitOn, 10*time.Second))
		stop1()
	}
	b.StopTimer()
	w, s1, s2 := median(whole), median(split1), median(split2)
	// The default chunk (30 s): what one worker pays per chunk, over fewer chunks.
	b.ReportMetric(float64(median(split1d))/float64(w), "split-1w-default-chunk-ratio")
	b.ReportMetric(float64(w)/1e6, "whole-ms")
	b.ReportMetric(float64(s1)/1e6, "split-1w-ms")
	b.ReportMetric(float64(s2)/1e6, "split-2w-ms")
	b.ReportMetric(float64(s1)/float64(w), "split-1w-ratio")
	b.ReportMetric(float64(s2)/float64(w), "split-2w-ratio")
}

// startSplitWorker starts worker process i, pinned to core i when taskset is there, and
// returns what stops it (an interrupt: it shuts down).
func startSplitWorker(b *testing.B, url string, i int) func() {
	b.Helper()
	argv := []string{os.Args[0], "-test.run=^$", "-test.bench=^$"}
	if ts, err := exec.LookPath("taskset"); err == nil {
		argv = append([]string{ts, "-c", strconv.Itoa(i)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), splitEnv+"="+url, fmt.Sprintf("%s=split-%d", splitIDEnv, i))
	p := startWorkerProc(b, cmd)
	if err := p.await(fmt.Sprintf("split worker %d", i)); err != nil {
		b.Fatal(err)
	}
	return func() { p.stop(os.Interrupt) }
}
