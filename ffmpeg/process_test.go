package ffmpeg

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// within fails unless got is within tol of want.
func within(t *testing.T, what string, got, want, tol time.Duration) {
	t.Helper()
	if d := got - want; d < -tol || d > tol {
		t.Errorf("%s = %v, want %v ± %v", what, got, want, tol)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		cfg   Config
		field string // "" = valid
	}{
		{"defaults", Config{}, ""},
		{"missing ffmpeg", Config{FFmpeg: "/nonexistent/ffmpeg"}, "Config.FFmpeg"},
		{"missing ffprobe", Config{FFprobe: "no-such-ffprobe-binary"}, "Config.FFprobe"},
		{"negative kill delay", Config{KillDelay: -time.Second}, "Config.KillDelay"},
		{"negative tail", Config{StderrTail: -1}, "Config.StderrTail"},
		{"negative pipe size", Config{PipeSize: -1}, "Config.PipeSize"},
		{"negative threads", Config{Threads: -1}, "Config.Threads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tt.cfg)
			if tt.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				c := r.Config()
				if c.KillDelay != DefaultKillDelay || c.StderrTail != DefaultStderrTail || c.PipeSize != DefaultPipeSize || !filepath.IsAbs(c.FFmpeg) {
					t.Errorf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("err = %v, want one naming %s", err, tt.field)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	f := setup(t)
	v, err := f.r.Version(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "ffmpeg version ") || strings.Contains(v, "\n") {
		t.Errorf("Version = %q", v)
	}
}

// run starts s, feeds input (nil: none), saves each output to dir/out<i>,
// collects progress and returns Wait's error.
func (f *fixture) run(t *testing.T, r *Runner, s Spec, input []byte) (outs []string, prog []Progress, p *Process, err error) {
	t.Helper()
	p, err = r.Start(ctxT(t), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	var fed <-chan error
	if input != nil {
		fed = feed(p.Stdin(), input, true)
	}
	var drains []<-chan error
	for i := range s.Outputs {
		path := filepath.Join(f.dir, "out"+strconv.Itoa(i))
		outs = append(outs, path)
		drains = append(drains, drain(p.Output(i), path))
	}
	for pr := range p.Progress() {
		prog = append(prog, pr)
	}
	err = p.Wait()
	for i, d := range drains {
		if derr := waitFor(t, "output "+strconv.Itoa(i), d, 10*time.Second); derr != nil {
			t.Errorf("reading output %d: %v", i, derr)
		}
	}
	if fed != nil {
		// EPIPE is expected when ffmpeg gives up on the input early.
		if ferr := waitFor(t, "input writer", fed, 10*time.Second); ferr != nil && !errors.Is(ferr, syscall.EPIPE) {
			t.Errorf("writing input: %v", ferr)
		}
	}
	return outs, prog, p, err
}

func TestTranscodeStdin(t *testing.T) {
	t.Parallel()
	f := setup(t)
	in, err := os.ReadFile(f.media(t, "in.mp4", "-movflags", "+faststart"))
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Outputs: []Output{
		{Container: "mp4", Video: &Video{Codec: "libx264", Preset: "ultrafast", Width: 160, Height: 120}, Audio: &Audio{Codec: "aac", Bitrate: "64k", Channels: 2, SampleRate: 48000}},
		{Container: "m4a", Audio: &Audio{Codec: "aac", Bitrate: "64k"}},
	}}
	outs, prog, p, err := f.run(t, f.r, s, in)
	if err != nil {
		t.Fatalf("Wait: %v\n%s", err, p.StderrTail())
	}

	// Progress: at least the final block, times never going back.
	if len(prog) == 0 || !prog[len(prog)-1].End {
		t.Fatalf("progress = %+v, want a final End block", prog)
	}
	for i := 1; i < len(prog); i++ {
		if prog[i].OutTime < prog[i-1].OutTime {
			t.Errorf("OutTime went back: %v then %v", prog[i-1].OutTime, prog[i].OutTime)
		}
	}
	last := prog[len(prog)-1]
	within(t, "final OutTime", last.OutTime, 2*time.Second, 100*time.Millisecond)
	if last.Frame != 50 || last.TotalSize == 0 {
		t.Errorf("final progress = %+v, want 50 frames and a size", last)
	}

	ctx := ctxT(t)
	mp4, err := f.r.ProbeFile(ctx, outs[0])
	if err != nil {
		t.Fatal(err)
	}
	v, okV := mp4.Video()
	a, okA := mp4.Audio()
	if !okV || !okA || v.Codec != "h264" || v.Width != 160 || v.Height != 120 || v.PixFmt != "yuv420p" || a.Codec != "aac" || a.SampleRate != 48000 {
		t.Errorf("mp4 output streams = %+v", mp4.Streams)
	}
	within(t, "mp4 duration", mp4.Duration, 2*time.Second, 100*time.Millisecond)
	within(t, "mp4 video duration", v.Duration, 2*time.Second, 100*time.Millisecond)

	m4a, err := f.r.ProbeFile(ctx, outs[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m4a.Video(); ok || len(m4a.Streams) != 1 {
		t.Errorf("m4a streams = %+v, want audio only", m4a.Streams)
	}
	within(t, "m4a duration", m4a.Duration, 2*time.Second, 100*time.Millisecond)
}

func TestTranscodeSpoolFile(t *testing.T) {
	t.Parallel()
	f := setup(t)
	in := f.media(t, "moov-at-end.mp4") // no faststart: moov after mdat
	s := Spec{Input: Input{Path: in}, Outputs: []Output{
		{Container: "mpegts", Video: &Video{Codec: "copy"}, Audio: &Audio{Codec: "copy"}},
	}}
	outs, _, p, err := f.run(t, f.r, s, nil)
	if p.Stdin() != nil {
		t.Error("Stdin should be nil for file input")
	}
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	res, err := f.r.ProbeFile(ctxT(t), outs[0])
	if err != nil {
		t.Fatal(err)
	}
	v, ok := res.Video()
	if !ok || v.Width != 320 || v.Height != 240 || res.FormatName != "mpegts" {
		t.Errorf("output = %+v", res)
	}
	within(t, "duration", res.Duration, 2*time.Second, 100*time.Millisecond)
}

func TestMoovAtEndOnPipeIsDetected(t *testing.T) {
	t.Parallel()
	f := setup(t)
	in, err := os.ReadFile(f.media(t, "moov-at-end.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "copy"}}}}
	_, _, p, err := f.run(t, f.r, s, in)
	// ffmpeg 5.1 reads past mdat to moov, cannot seek back, writes an
	// empty output and may still exit 0: the stderr says why.
	if err != nil && !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("err = %v, want nil or ErrInvalidInput", err)
	}
	if !TruncatedInput(p.StderrTail()) {
		t.Errorf("TruncatedInput = false for:\n%s", p.StderrTail())
	}
}

func TestTranscodeRandomBytes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	junk := make([]byte, 256<<10)
	_, _ = rand.Read(junk)
	s := Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx264", Preset: "ultrafast"}, Audio: &Audio{Codec: "aac"}}}}
	_, _, p, err := f.run(t, f.r, s, junk)
	var fe *Error
	if !errors.As(err, &fe) || !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("err = %v, want *Error with ErrInvalidInput", err)
	}
	if fe.Reason == "" || fe.Op != "transcode" || fe.ExitCode == 0 || fe.StderrTail != p.StderrTail() || len(fe.Args) == 0 {
		t.Errorf("error lacks diagnostics: %+v", fe)
	}
}

func TestTranscodeTruncated(t *testing.T) {
	t.Parallel()
	f := setup(t)
	in, err := os.ReadFile(f.media(t, "in.mp4", "-movflags", "+faststart"))
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx264", Preset: "ultrafast"}, Audio: &Audio{Codec: "aac"}}}}
	_, _, p, err := f.run(t, f.r, s, in[:len(in)*30/100])
	// ffmpeg 5.1 exits 0 here; only stderr tells the input was cut short.
	if err != nil && !errors.Is(err, ErrInvalidInput) {
		t.Errorf("err = %v, want nil or ErrInvalidInput", err)
	}
	if !TruncatedInput(p.StderrTail()) {
		t.Errorf("TruncatedInput = false for stderr:\n%s", p.StderrTail())
	}
}

func TestPipeSize(t *testing.T) {
	t.Parallel()
	f := setup(t)
	p, err := f.r.Start(ctxT(t), Spec{Outputs: []Output{{Container: "mp4", Audio: &Audio{Codec: "aac"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	for name, file := range map[string]*os.File{"stdin": p.Stdin(), "output 0": p.Output(0)} {
		rc, err := file.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		size := 0
		_ = rc.Control(func(fd uintptr) { size, err = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) })
		if err != nil || size != DefaultPipeSize {
			t.Errorf("%s pipe size = %d, %v; want %d", name, size, err, DefaultPipeSize)
		}
	}
	// Empty input: ffmpeg fails, classified as bad input.
	_ = p.Stdin().Close()
	out := drain(p.Output(0), "")
	if err := p.Wait(); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("Wait = %v, want ErrInvalidInput for empty input", err)
	}
	if err := waitFor(t, "output", out, 5*time.Second); err != nil {
		t.Error(err)
	}
}

func TestCancelMidTranscode(t *testing.T) {
	t.Parallel()
	f := setup(t)
	// MPEG-TS has no end marker: ffmpeg keeps waiting for more input.
	// 8 of 10 s are fed: ffmpeg probes up to 5 s (analyzeduration) of a
	// pipe before it starts encoding.
	in, err := os.ReadFile(f.mediaOf(t, "in.ts", "160x120", "10", "-f", "mpegts"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	p, err := f.r.Start(ctx, Spec{Outputs: []Output{{Container: "mpegts", Video: &Video{Codec: "libx264", Preset: "ultrafast"}, Audio: &Audio{Codec: "aac"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	fed := feed(p.Stdin(), in[:len(in)*8/10], false)
	out := drain(p.Output(0), "")
	if _, ok := nextProgress(t, p.Progress(), 10*time.Second); !ok {
		t.Fatalf("progress closed before any block: %s", p.StderrTail())
	}
	pid := p.Pid()
	if !alive(pid) {
		t.Fatal("ffmpeg not running")
	}

	start := time.Now()
	cancel()
	waited := make(chan error, 1)
	go func() { waited <- p.Wait() }()
	err = waitFor(t, "Wait after cancel", waited, 2*time.Second)
	if !errors.Is(err, ErrStopped) {
		t.Errorf("Wait = %v, want ErrStopped", err)
	}
	t.Logf("stopped in %v", time.Since(start))
	assertGone(t, pid)
	p.Stop() // after exit: a no-op
	_ = waitFor(t, "output", out, 5*time.Second)
	_ = waitFor(t, "input writer", fed, 5*time.Second)
	for range p.Progress() { // closed
	}
}

// nextProgress waits for one value from ch; ok is false when it closed.
func nextProgress(t *testing.T, ch <-chan Progress, d time.Duration) (Progress, bool) {
	t.Helper()
	select {
	case pr, ok := <-ch:
		return pr, ok
	case <-time.After(d):
		t.Fatalf("no progress within %v", d)
		return Progress{}, false
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		spec Spec
		want error
	}{
		{"invalid spec", ctxT(t), Spec{}, ErrSpec},
		{"context already canceled", canceled, spec1, ErrStopped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := f.r.Start(tt.ctx, tt.spec)
			if p != nil || !errors.Is(err, tt.want) {
				t.Errorf("Start = %v, %v; want nil, %v", p, err, tt.want)
			}
		})
	}
}

func TestProgressLatestWins(t *testing.T) {
	t.Parallel()
	p := &Process{progress: make(chan Progress, progressBuffer)}
	for i := range 100 {
		p.publish(Progress{Frame: int64(i)}) // must never block
	}
	close(p.progress)
	var got []int64
	for pr := range p.progress {
		got = append(got, pr.Frame)
	}
	if len(got) != progressBuffer || got[len(got)-1] != 99 {
		t.Errorf("kept %v, want the last %d ending with 99", got, progressBuffer)
	}
}
