package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

func TestMain(m *testing.M) {
	// Run so, the test binary is the command as users run it, main and all (TestMaxprocsLog).
	if os.Getenv("TRANSCODER_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(testenv.Main(m))
}

func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "w.yaml")
	if err := os.WriteFile(file, []byte("slots: 3\nack_wait: 10s\nid: from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		env   []string
		flags []string
		slots int
		id    string
		ack   time.Duration
	}{
		{"file", nil, nil, 3, "from-file", 10 * time.Second},
		{"env over file", []string{"TRANSCODER_SLOTS=4", "TRANSCODER_ID=from-env"}, nil, 4, "from-env", 10 * time.Second},
		{"flag over env", []string{"TRANSCODER_SLOTS=4"}, []string{"--slots=5", "--ack-wait=20s"}, 5, "from-file", 20 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := workerCommand(nil, nil)
			if err := cmd.ParseFlags(c.flags); err != nil {
				t.Fatal(err)
			}
			cfg, err := loadConfig(file, c.env, cmd.Flags())
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Slots != c.slots || cfg.ID != c.id || cfg.AckWait != c.ack {
				t.Errorf("slots=%d id=%s ack=%s, want %d %s %s", cfg.Slots, cfg.ID, cfg.AckWait, c.slots, c.id, c.ack)
			}
			if cfg.Listen != "127.0.0.1:4222" || cfg.GracePeriod != 30*time.Second {
				t.Errorf("defaults from configs/worker.example.yaml lost: %+v", cfg)
			}
		})
	}
	if _, err := loadConfig(file, []string{"TRANSCODER_SLOTS=many"}, pflag.NewFlagSet("x", pflag.ContinueOnError)); err == nil || !strings.Contains(err.Error(), "TRANSCODER_SLOTS") {
		t.Errorf("bad env value: err = %v, want it named", err)
	}
	if err := os.WriteFile(file, []byte("slotz: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(file, nil, nil); err == nil {
		t.Error("unknown key in the config file accepted")
	}
}

func TestPresetsAndDryRun(t *testing.T) {
	out, _, err := cli(t, "presets")
	if err != nil || !strings.Contains(out, "h264-720p") || !strings.Contains(out, "aac-audio") {
		t.Fatalf("presets: %v\n%s", err, out)
	}
	out, _, err = cli(t, "submit", "in.mp4", "--preset", "h264-480p", "-o", "out.mp4", "--dry-run", "--meta", "k=v")
	if err != nil {
		t.Fatal(err)
	}
	j, err := job.Decode([]byte(out))
	if err != nil {
		t.Fatalf("dry-run output is not a job: %v\n%s", err, out)
	}
	wd, _ := os.Getwd()
	if j.ID == "" || j.Input != "file://"+filepath.Join(wd, "in.mp4") || j.Outputs[0].URL != "file://"+filepath.Join(wd, "out.mp4") || j.Metadata["k"] != "v" {
		t.Errorf("dry-run job %+v", j)
	}
	if _, _, err := cli(t, "submit", "in.mp4", "--preset", "nope", "-o", "o.mp4", "--dry-run"); exitCode(err) != 2 {
		t.Errorf("unknown preset: err %v, exit %d; want usage error", err, exitCode(err))
	}
	if _, _, err := cli(t, "run", "in.mp4"); err == nil {
		t.Error("run without -o accepted")
	}
}

func TestRunOneShot(t *testing.T) {
	dir := t.TempDir()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	out := filepath.Join(dir, "o.mp4")

	stdout, _, err := cli(t, "run", in, "--preset", "h264-480p", "-o", out, "--explain")
	if err != nil {
		t.Fatal(err)
	}
	first := strings.SplitN(stdout, "\n", 2)[0]
	// A plain mp4 (edit lists, index in front) is written to a spool file, then streamed out.
	if !strings.HasPrefix(first, "ffmpeg ") || !strings.Contains(first, "-i pipe:0") || !strings.Contains(first, "-movflags +faststart -y file:") {
		t.Errorf("--explain: %q", first)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--explain wrote an output")
	}

	stdout, stderr, err := cli(t, "run", in, "--preset", "h264-480p", "-o", out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, out) {
		t.Errorf("run did not report the output: %q", stdout)
	}
	if got := testenv.Probe(t, out, "stream=codec_type", ""); got != "video\naudio" {
		t.Errorf("streams %q", got)
	}

	bad := filepath.Join(dir, "bad.mp4")
	if err := os.WriteFile(bad, bytes.Repeat([]byte("junk"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, err = cli(t, "run", bad, "--preset", "h264-480p", "-o", filepath.Join(dir, "bad-out.mp4"))
	if err == nil || !strings.Contains(stderr, "invalid_input") {
		t.Errorf("bad input: err %v, stderr %q; want invalid_input", err, stderr)
	}
}

// TestWorkerAndSubmit runs `transcoder worker` on a free port and `transcoder submit --wait`,
// `status` and `cancel` against it, as separate users would.
func TestWorkerAndSubmit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metrics := l.Addr().String()
	_ = l.Close()
	url := startWorker(t, "--slots", "1", "--log-level", "warn", "--id", "cli-worker", "--metrics-addr", metrics)

	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})
	out := filepath.Join(t.TempDir(), "sub.mp4")
	stdout, stderr, err := cli(t, "submit", "--nats", url, in, "--preset", "h264-480p", "-o", out, "--wait", "--id", "cli-job")
	if err != nil {
		t.Fatalf("submit --wait: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "cli-job\n") || !strings.Contains(stdout, out) {
		t.Errorf("submit output %q", stdout)
	}
	stdout, _, err = cli(t, "status", "--nats", url, "cli-job")
	var st job.Status
	if err != nil || json.Unmarshal([]byte(stdout), &st) != nil || st.State != job.StateSucceeded {
		t.Errorf("status: %v %q", err, stdout)
	}
	if _, _, err := cli(t, "cancel", "--nats", url, "cli-job"); err == nil || !strings.Contains(err.Error(), "already succeeded") {
		t.Errorf("cancel of a finished job: %v", err)
	}
	if _, _, err := cli(t, "status", "--nats", url, "no-such-job"); err == nil {
		t.Error("status of an unknown job succeeded")
	}
	if out, _, err := cli(t, "workers", "--nats", url); err != nil || !strings.Contains(out, "cli-worker") {
		t.Errorf("workers: %v %q", err, out)
	}
	if out, _, err := cli(t, "jobs", "--nats", url); err != nil || !strings.Contains(out, "cli-job") || !strings.Contains(out, "succeeded") {
		t.Errorf("jobs: %v %q", err, out)
	}
	if out, _, err := cli(t, "watch", "--nats", url, "cli-job"); err != nil || !strings.Contains(out, "started") || !strings.Contains(out, "succeeded") {
		t.Errorf("watch: %v %q", err, out)
	}
	resp, err := http.Get("http://" + metrics + "/metrics") //nolint:noctx // a test against a local server
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(body), "transcoder_ring_buffers_in_use") || !strings.Contains(string(body), `outcome="succeeded"`) {
		t.Errorf("/metrics: %.300s", body)
	}
}

// startWorker runs `transcoder worker` on a free port until the test ends and returns its NATS
// URL once it says it is ready.
func startWorker(t *testing.T, args ...string) string {
	t.Helper()
	url, _ := startWorkerLog(t, args...)
	return url
}

// startWorkerLog is startWorker that also returns the worker's log (its stderr).
func startWorkerLog(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	werr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"worker", "--listen", addr, "--data", t.TempDir()}, args...), pw, werr)
		_ = pw.CloseWithError(err)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v\n%s", err, werr.String())
		}
	})
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ready") {
				close(ready)
				break
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("worker not ready: %s", werr.String())
	}
	return "nats://" + addr, werr
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDLQCommands: a job that fails for good shows in `dlq list`, and `dlq retry` runs it again.
func TestDLQCommands(t *testing.T) {
	url := startWorker(t, "--slots", "1", "--log-level", "error")
	dir := t.TempDir()
	in := filepath.Join(dir, "later.mp4")
	if _, _, err := cli(t, "submit", "--nats", url, in, "--preset", "h264-480p", "-o", filepath.Join(dir, "o.mp4"), "--id", "dead-1", "--wait"); err == nil {
		t.Fatal("a job with a missing input succeeded")
	}
	out, _, err := cli(t, "dlq", "list", "--nats", url)
	if err != nil || !strings.Contains(out, "dead-1") || !strings.Contains(out, "invalid_input") {
		t.Fatalf("dlq list: %v %q", err, out)
	}
	data, err := os.ReadFile(testenv.MakeClip(t, testenv.Clip{Seconds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	events, err := nc.SubscribeSync(worker.EventSubject("dead-1"))
	if err != nil {
		t.Fatal(err)
	}
	if out, _, err := cli(t, "dlq", "retry", "--nats", url, "dead-1"); err != nil || !strings.Contains(out, "queued again") {
		t.Fatalf("dlq retry: %v %q", err, out)
	}
	for {
		m, err := events.NextMsg(60 * time.Second)
		if err != nil {
			t.Fatalf("retried job: %v", err)
		}
		var ev job.Event
		if json.Unmarshal(m.Data, &ev) == nil && ev.Type.Terminal() {
			if ev.Type != job.EventSucceeded {
				t.Fatalf("retried job ended %s %+v", ev.Type, ev.Error)
			}
			break
		}
	}
	if out, _, err := cli(t, "dlq", "list", "--nats", url); err != nil || strings.Contains(out, "dead-1") {
		t.Errorf("dead letter still listed after a successful retry: %v %q", err, out)
	}
}

// TestUploadGetAndCapabilities: submit --upload puts a local file in the object store and the
// job reads it from there; get fetches the result; a job no live worker can encode is warned
// about at submit.
func TestUploadGetAndCapabilities(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfg, []byte("encoders: [libx264, aac]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	url := startWorker(t, "--slots", "1", "--log-level", "warn", "--id", "x264-only", "--config", cfg)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2})

	stdout, stderr, err := cli(t, "submit", "--nats", url, "--upload", in, "--preset", "h264-480p", "-o", "nats://results/up/out.mp4", "--wait", "--id", "up-job")
	if err != nil {
		t.Fatalf("submit --upload: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "uploaded") || !strings.Contains(stderr, "nats://uploads/up-job/") || !strings.Contains(stdout, "nats://results/up/out.mp4") {
		t.Errorf("submit --upload said %q / %q", stdout, stderr)
	}
	got := filepath.Join(dir, "got.mp4")
	if _, stderr, err := cli(t, "get", "--nats", url, "nats://results/up/out.mp4", "-o", got); err != nil {
		t.Fatalf("get: %v %s", err, stderr)
	}
	if d := testenv.Probe(t, got, "format=duration", ""); !strings.HasPrefix(d, "2.0") && !strings.HasPrefix(d, "1.9") {
		t.Errorf("downloaded output lasts %q, want 2 s", d)
	}
	if _, _, err := cli(t, "get", "--nats", url, "nats://results/up/missing.mp4", "-o", filepath.Join(dir, "m.mp4")); err == nil {
		t.Error("get of a missing object succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "m.mp4")); err == nil {
		t.Error("a failed get left a file")
	}

	_, stderr, err = cli(t, "submit", "--nats", url, in, "--preset", "hevc-720p", "-o", filepath.Join(dir, "h.mp4"), "--dry-run=false")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "no live worker can encode all of [aac libx265]") {
		t.Errorf("submit of an hevc job to an x264-only fleet said %q", stderr)
	}
}

// TestRunReadsWorkerConfig: `run` takes the settings `worker` takes, from TRANSCODER_*
// variables and the config file: its plan and its worker use the spool directory they name.
func TestRunReadsWorkerConfig(t *testing.T) {
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	dir := t.TempDir()
	fromEnv, fromFile := filepath.Join(dir, "env-spool"), filepath.Join(dir, "file-spool")
	for _, d := range []string{fromEnv, fromFile} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfg, []byte("spool_dir: "+fromFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	explain := func(args ...string) string {
		t.Helper()
		out, stderr, err := cli(t, append([]string{"run", in, "--preset", "h264-480p", "-o", filepath.Join(dir, "o.mp4"), "--explain"}, args...)...)
		if err != nil {
			t.Fatalf("run --explain %v: %v %s", args, err, stderr)
		}
		return out
	}
	if out := explain("--config", cfg); !strings.Contains(out, "file:"+fromFile+"/") {
		t.Errorf("spool_dir of --config not used:\n%s", out)
	}
	t.Setenv("TRANSCODER_SPOOL_DIR", fromEnv)
	if out := explain("--config", cfg); !strings.Contains(out, "file:"+fromEnv+"/") {
		t.Errorf("TRANSCODER_SPOOL_DIR not used (over the file):\n%s", out)
	}
	// The worker of the run, not only its plan: a spool "directory" that is a file fails it.
	notDir := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TRANSCODER_SPOOL_DIR", notDir)
	_, stderr, err := cli(t, "run", in, "--preset", "h264-480p", "-o", filepath.Join(dir, "o.mp4"))
	if err == nil || !strings.Contains(stderr, notDir) {
		t.Errorf("run with TRANSCODER_SPOOL_DIR=%s (a file): err %v, stderr %q; want a failure naming it", notDir, err, stderr)
	}
	t.Setenv("TRANSCODER_SPOOL_DIR", "")
	if _, _, err := cli(t, "run", in, "--preset", "h264-480p", "-o", filepath.Join(dir, "o.mp4"), "--log-level", "loud"); exitCode(err) != 2 {
		t.Errorf("run --log-level loud: %v, want a usage error", err)
	}
}

// TestMaxprocsLog: the automaxprocs line is in the worker's structured log, and no client
// command prints it.
func TestMaxprocsLog(t *testing.T) {
	for _, args := range [][]string{{"presets"}, {"submit", "in.mp4", "-o", "out.mp4", "--dry-run"}} {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "TRANSCODER_TEST_MAIN=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("transcoder %v: %v %s", args, err, stderr.String())
		}
		if strings.Contains(stderr.String(), "maxprocs") {
			t.Errorf("transcoder %v printed %q", args, stderr.String())
		}
	}
	_, log := startWorkerLog(t, "--id", "maxprocs", "--log-format", "json")
	var found bool
	for _, line := range strings.Split(log.String(), "\n") {
		var rec struct{ Msg string }
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Msg, "maxprocs: ") {
			found = true
		}
	}
	if !found {
		t.Errorf("no maxprocs record in the worker's log:\n%s", log.String())
	}
}
