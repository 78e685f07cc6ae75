package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// workerProc is a worker process of this test binary (testenv.ServeWorker behind one of the
// benchmarks' environment variables), which prints "ready" once it serves.
type workerProc struct {
	cmd    *exec.Cmd
	ready  chan string   // its first line
	copied chan struct{} // closed once its stdout is drained to the end
}

// startWorkerProc starts cmd (its stdout is taken over) without waiting for it; the test's end
// kills it if it still runs.
func startWorkerProc(b testing.TB, cmd *exec.Cmd) *workerProc {
	b.Helper()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &workerProc{cmd: cmd, ready: make(chan string, 1), copied: make(chan struct{})}
	go func() {
		defer close(p.copied)
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		p.ready <- line
		_, _ = io.Copy(io.Discard, stdout)
	}()
	b.Cleanup(func() { p.stop(os.Kill) })
	return p
}

// await waits until the process says it is ready.
func (p *workerProc) await(name string) error {
	select {
	case line := <-p.ready:
		if strings.TrimSpace(line) != "ready" {
			return fmt.Errorf("%s said %q", name, line)
		}
		return nil
	case <-time.After(60 * time.Second):
		return fmt.Errorf("%s did not start", name)
	}
}

// stop signals the process and waits for it to exit; calls after the first do nothing.
func (p *workerProc) stop(sig os.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.copied
	_ = p.cmd.Wait()
}
