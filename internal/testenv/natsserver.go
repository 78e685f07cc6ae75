package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FindNATSServer is the real nats-server binary (`make tools` installs it): on the PATH or in
// GOPATH/bin; "" when neither has it.
func FindNATSServer() string {
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "nats-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// NATSServerBin is FindNATSServer, or skips the test without the binary.
func NATSServerBin(t testing.TB) string {
	t.Helper()
	p := FindNATSServer()
	if p == "" {
		t.Skip("nats-server binary not installed (make tools installs it)")
	}
	return p
}

// StartNATSServer runs the real nats-server with args and env added to the test's
// environment, waits until it says it is ready (failing the test with its log if it exits
// first) and kills it when the test ends.
func StartNATSServer(t testing.TB, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command(NATSServerBin(t), args...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	scanned := make(chan struct{})
	var log strings.Builder
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if log.Len() < 1<<16 {
				log.WriteString(sc.Text() + "\n")
			}
			if strings.Contains(sc.Text(), "Server is ready") {
				close(ready)
				break
			}
		}
		for sc.Scan() {
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-scanned; _ = cmd.Wait() })
	select {
	case <-ready:
	case <-scanned:
		t.Fatalf("nats-server exited:\n%s", log.String())
	case <-time.After(20 * time.Second):
		t.Fatal("nats-server did not become ready")
	}
}
