package ffmpeg

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestPacketEnd(t *testing.T) {
	var p packetEnd
	for _, chunk := range []string{"0.000000,0.040000\n0.04", "0000,0.040000\nN/A,N/A\n", "1.960000,0.040000\n", "garbage\n1.5,0.1\n"} {
		if _, err := p.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if p.max < 1.9999 || p.max > 2.0001 {
		t.Errorf("end = %v, want 2.0", p.max)
	}
}

// TestMeasureDuration: a webm written to a pipe has no duration in its header; the packets
// still tell.
func TestMeasureDuration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "piped.webm")
	cmd := exec.Command("sh", "-c", "ffmpeg -v error -f lavfi -i testsrc2=size=160x120:rate=25 -t 2 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -f webm pipe:1 > "+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pr, err := r.ProbeFile(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Duration != 0 {
		t.Logf("ffprobe now reports a duration for piped webm: %s", pr.Duration)
	}
	d, err := r.MeasureDuration(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if d < 1950*time.Millisecond || d > 2050*time.Millisecond {
		t.Errorf("measured %s, want 2s", d)
	}
	if _, err := r.MeasureDuration(ctx, filepath.Join(dir, "missing.webm")); err == nil {
		t.Error("missing file measured")
	}
}

// TestStartProbe: a probe beside the stream, fed more than it reads (it stops early), and one
// fed garbage.
func TestStartProbe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.mp4")
	cmd := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "8",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", in)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	data, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.StartProbe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ { // far more than the clip: ffprobe leaves early, writes fail
		if _, err := p.Stdin().Write(data); err != nil {
			break
		}
	}
	res, err := p.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := res.Video(); !ok || v.Width != 320 || res.Duration < 7*time.Second {
		t.Errorf("probe %+v", res)
	}

	p, err = r.StartProbe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = p.Stdin().Write(bytes.Repeat([]byte("not media "), 10000))
	if _, err := p.Wait(); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("garbage: %v, want ErrInvalidInput", err)
	}
}
