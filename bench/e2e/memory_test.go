package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
)

// BenchmarkWorkerRSS streams inputs of 10 MB, 100 MB and 1 GB (raw video in nut, generated)
// through a worker process of its own each, remuxing them (every byte crosses the ring twice),
// and reports the worker's peak RSS for each. Memory must not grow with the input: the ring plus
// a small constant. The benchmark fails if the 1 GB run peaks more than 16 MiB above the 10 MB
// run. With BENCH_OUT it writes rss.csv for the plot.
func BenchmarkWorkerRSS(b *testing.B) {
	sizes := []int64{10e6, 100e6, 1e9}
	frame := int64(640 * 360 * 3 / 2)
	dir := b.TempDir()
	peaks := make([]int64, len(sizes))
	b.ResetTimer()
	for range b.N {
		for i, size := range sizes {
			frames := max(1, size/frame)
			in := testenv.MakeClip(b, testenv.Clip{Seconds: float64(frames) / 25, Size: "640x360", NoAudio: true,
				Codec: "rawvideo", Container: "nut", Extra: []string{"-frames:v", strconv.FormatInt(frames, 10)}})
			peaks[i] = max(peaks[i], workerPeak(b, in, filepath.Join(dir, fmt.Sprintf("out-%d.nut", i))))
		}
	}
	b.StopTimer()
	for i, size := range sizes {
		b.ReportMetric(float64(peaks[i])/(1<<20), fmt.Sprintf("rss-%dMB-MiB", size/1e6))
	}
	if growth := peaks[2] - peaks[0]; growth > 16<<20 {
		b.Errorf("worker RSS grew by %d MiB from a 10 MB to a 1 GB input", growth>>20)
	}
	if out := benchOut(b); out != "" {
		var sb strings.Builder
		sb.WriteString("input_bytes,peak_rss_bytes\n")
		for i, size := range sizes {
			fmt.Fprintf(&sb, "%d,%d\n", size, peaks[i])
		}
		if err := os.WriteFile(filepath.Join(out, "rss.csv"), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// workerPeak runs one job through a fresh worker process and returns its peak RSS (VmHWM).
func workerPeak(b *testing.B, in, out string) int64 {
	b.Helper()
	r := newRig(b, nil, 0) // the NATS server and client, no in-process worker
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"="+r.ns.URL())
	p := startWorkerProc(b, cmd)
	defer p.stop(os.Kill)
	if err := p.await("worker process"); err != nil {
		b.Fatal(err)
	}
	_, done := r.submit(b, &job.Job{Input: fileURL(in), Outputs: []job.Output{{URL: fileURL(out), Container: "nut", Video: &job.Video{Codec: "copy"}}}})
	ev := wait(b, done)
	if ev.WorkerID != "rss" {
		b.Fatalf("job ran on %s", ev.WorkerID)
	}
	peak := vmHWM(b, cmd.Process.Pid)
	_ = os.Remove(out)
	return peak
}

func vmHWM(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM")
	return 0
}
