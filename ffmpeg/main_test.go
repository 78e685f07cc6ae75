package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeEnv selects a fake ffmpeg: the test binary re-executed through a
// small script (see fakeFFmpeg), so faults can be injected without
// touching the real binary.
const fakeEnv = "FFMPEG_FAKE"

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeEnv); mode != "" {
		os.Exit(runFake(mode))
	}
	goleak.VerifyTestMain(cleanupMain{m})
}

// cleanupMain removes the sandbox tests' copy of the test binary after the tests.
type cleanupMain struct{ m *testing.M }

func (c cleanupMain) Run() int {
	code := c.m.Run()
	if selfCopy != "" {
		_ = os.RemoveAll(filepath.Dir(selfCopy))
	}
	return code
}

// runFake is the body of the fake ffmpeg.
func runFake(mode string) int {
	switch mode {
	case "hang":
		// Ignore SIGTERM and start a grandchild in the same process group
		// that ignores it too: only SIGKILL to the whole group ends both.
		signal.Ignore(syscall.SIGTERM)
		self, _ := os.Executable()
		child := exec.Command(self)
		child.Env = append(os.Environ(), fakeEnv+"=hang-child")
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "fake: start child:", err)
			return 1
		}
		out := os.NewFile(3, "out0")
		fmt.Fprintf(out, "ready %d %d\n", os.Getpid(), child.Process.Pid)
		time.Sleep(time.Hour) // the fake's job is to hang
		return 0
	case "hang-child":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Hour)
		return 0
	case "crash":
		// A real SIGSEGV death of this very pid.
		_ = syscall.Exec("/bin/sh", []string{"sh", "-c", "kill -SEGV $$"}, os.Environ())
		return 1
	case "flood":
		line := bytes.Repeat([]byte("x"), 1023)
		line = append(line, '\n')
		w := bufio.NewWriterSize(os.Stderr, 64<<10)
		for written := 0; written < 50<<20; written += len(line) {
			_, _ = w.Write(line)
		}
		_, _ = w.WriteString("[error] pipe:0: Invalid data found when processing input\n")
		_ = w.Flush()
		return 1
	}
	if fake, ok := moreFakes[mode]; ok {
		return fake()
	}
	fmt.Fprintln(os.Stderr, "fake: unknown mode", mode)
	return 2
}

// fixture is what most tests need: a Runner and a temp dir.
type fixture struct {
	r   *Runner
	dir string
}

func setup(t testing.TB) *fixture {
	t.Helper()
	r, err := New(Config{KillDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{r: r, dir: t.TempDir()}
}

// media makes a 2 s 320x240 test file with real ffmpeg from lavfi
// sources.
func (f *fixture) media(t testing.TB, name string, extra ...string) string {
	t.Helper()
	return f.mediaOf(t, name, "320x240", "2", extra...)
}

func (f *fixture) mediaOf(t testing.TB, name, size, seconds string, extra ...string) string {
	t.Helper()
	out := filepath.Join(f.dir, name)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", seconds, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"}
	args = append(append(args, extra...), out)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("make %s: %v\n%s", name, err, b)
	}
	return out
}

// fakeFFmpeg returns a Runner whose ffmpeg is the test binary in mode.
func (f *fixture) fakeFFmpeg(t *testing.T, mode string, cfg Config) *Runner {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return f.fakeFFmpegAt(t, self, mode, cfg)
}

// fakeFFmpegAt is fakeFFmpeg with the test binary at self.
func (f *fixture) fakeFFmpegAt(t *testing.T, self, mode string, cfg Config) *Runner {
	t.Helper()
	script := filepath.Join(f.dir, "ffmpeg-"+mode)
	body := fmt.Sprintf("#!/bin/sh\nexec env %s=%s %s \"$@\"\n", fakeEnv, mode, Quote([]string{self}))
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.FFmpeg = script
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// drain reads f to EOF into a file (or discards when path is ""),
// reporting the result on the returned channel.
func drain(f *os.File, path string) <-chan error {
	done := make(chan error, 1)
	go func() {
		w := io.Discard
		if path != "" {
			out, err := os.Create(path)
			if err != nil {
				done <- err
				return
			}
			defer func() { _ = out.Close() }()
			w = out
		}
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					done <- werr
					return
				}
			}
			if err == io.EOF {
				done <- nil
				return
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	return done
}

// feed writes data into w in chunks and closes it (close=false keeps it
// open, to make ffmpeg wait for more).
func feed(w *os.File, data []byte, close bool) <-chan error {
	done := make(chan error, 1)
	go func() {
		var err error
		for len(data) > 0 && err == nil {
			n := min(len(data), 64<<10)
			_, err = w.Write(data[:n])
			data = data[n:]
		}
		if close {
			_ = w.Close()
		}
		done <- err
	}()
	return done
}

// waitFor waits for a result on ch or fails after d.
func waitFor[T any](t *testing.T, what string, ch <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// groupMembers lists live processes whose process group is pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		// state ppid pgrp ...
		if len(fields) > 2 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertGone checks the process and its whole group are gone.
func assertGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) && alive(pid) {
		t.Errorf("pid %d still alive (kill 0: %v)", pid, err)
	}
	if m := groupMembers(t, pid); len(m) > 0 {
		t.Errorf("process group %d still has members %v", pid, m)
	}
}

// ctxT is a context bounded by the test's lifetime.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
