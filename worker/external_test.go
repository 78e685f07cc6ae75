package worker_test

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/natsembed"
)

// startNATSServer runs the real nats-server with JetStream and waits for it to say it is ready.
func startNATSServer(t *testing.T, bin, addr, dir string) *exec.Cmd {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-js", "-sd", dir, "-a", host, "-p", port)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Server is ready") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("nats-server did not become ready")
	}
	return cmd
}

// TestExternalNATSKilled: the worker runs against a real nats-server process, which is killed
// with SIGKILL mid-job and started again on the same store. The worker reconnects by itself and
// the job finishes exactly once.
func TestExternalNATSKilled(t *testing.T) {
	t.Parallel()
	bin := testenv.NATSServerBin(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	dir := t.TempDir()
	srv := startNATSServer(t, bin, addr, dir)
	nc, err := nats.Connect("nats://"+addr, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := setupWith(t, (*natsembed.Server)(nil), nc)
	e.startWorker("external")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 20, Size: "640x360"})
	out := filepath.Join(e.dir, "external.mp4")
	id := e.submit(in, "h264-480p", out)
	e.events.waitFor(t, waitLong, "progress", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.OutTime > 0
	})
	if err := srv.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = srv.Wait()
	startNATSServer(t, bin, addr, dir)
	ev := e.events.waitFor(t, waitLong, "succeeded", func(ev job.Event) bool { return ev.JobID == id && ev.Type == job.EventSucceeded })
	e.waitQueueEmpty(t)
	if n := e.events.count(id, job.EventSucceeded); n != 1 {
		t.Errorf("%d succeeded events, want 1", n)
	}
	if d := durationOf(t, out); d < 19.5 {
		t.Errorf("output %.2f s", d)
	}
	t.Logf("succeeded on attempt %d after a SIGKILL of nats-server", ev.Attempt)
}
