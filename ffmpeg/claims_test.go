package ffmpeg

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// realworld is a real file kept for tests (internal/testenv/testdata/realworld, with its licence).
func realworld(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "internal", "testenv", "testdata", "realworld", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPaddedLastBoxRun: an mp4 whose last box declares more bytes than the file holds, every
// sample there, read from a pipe: ffmpeg logs "root atom offset ...: partial file" after the
// last sample (from a file it says nothing) and exits 0. That is not a truncated input.
func TestPaddedLastBoxRun(t *testing.T) {
	t.Parallel()
	f := setup(t)
	in, err := os.ReadFile(realworld(t, "mp4_sample_mdat_too_long.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.r.Start(ctxT(t), Spec{Outputs: []Output{{Container: "mkv", Video: &Video{Codec: "copy"}, Audio: &Audio{Codec: "copy"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	out := drain(p.Output(0), "")
	fed := feed(p.Stdin(), in, true)
	err = p.Wait()
	_ = waitFor(t, "output", out, 10*time.Second)
	_ = waitFor(t, "input", fed, 10*time.Second)
	if err != nil {
		t.Fatalf("Wait = %v; want nil (stderr:\n%s)", err, p.StderrTail())
	}
}

// TestMeasureSpan: the packets, not the header. A fragmented mp4 whose header says 39 h holds
// 1 s; a 13 h timestamp gap is found at its first packet past the stop, quickly.
func TestMeasureSpan(t *testing.T) {
	t.Parallel()
	f := setup(t)
	frag := realworld(t, "mp4_sample_fragmented.mp4")
	b, err := os.ReadFile(frag)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   Input
		src  []byte
	}{{"file", Input{Path: frag}, nil}, {"pipe", Input{}, b}} {
		var src *bytes.Reader
		if c.src != nil {
			src = bytes.NewReader(c.src)
		}
		sp, err := f.r.MeasureSpan(ctxT(t), c.in, readerOrNil(src), 12*time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if sp.Over || sp.Total < 900*time.Millisecond || sp.Total > 1100*time.Millisecond || len(sp.Streams) != 2 {
			t.Errorf("%s: span %+v; want about 1 s over 2 streams", c.name, sp)
		}
	}

	gap := filepath.Join(t.TempDir(), "gap.mkv")
	ffmpegCmd(t, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2", "-vf", "setpts='if(gte(N,10),PTS+46800/TB,PTS)'", "-c:v", "libx264", "-preset", "ultrafast", gap)
	start := time.Now()
	sp, err := f.r.MeasureSpan(ctxT(t), Input{Path: gap}, nil, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.Over || sp.Total <= 12*time.Hour {
		t.Errorf("gap: span %+v; want over 12 h", sp)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gap measured in %s", took)
	}
	if _, err := f.r.MeasureSpan(ctxT(t), Input{}, nil, time.Hour); !errors.As(err, new(*SpecError)) {
		t.Errorf("no input: %v; want a SpecError", err)
	}
}

// readerOrNil keeps a nil *bytes.Reader from becoming a non-nil io.Reader.
func readerOrNil(r *bytes.Reader) io.Reader {
	if r == nil {
		return nil
	}
	return r
}

func ffmpegCmd(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, b)
	}
}
