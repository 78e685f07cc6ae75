package media

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// headClip is a 0.2 s clip encoded with args (testenv would import this package).
func headClip(t *testing.T, ext string, args ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "clip."+ext)
	argv := append([]string{"-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=25", "-t", "0.2"}, args...)
	if out, err := exec.Command("ffmpeg", append(argv, path)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSDRMP4: the head tells 8-bit H.264 in mp4 (SDR: no probe needed before ffmpeg) from
// everything that may be HDR or that it cannot read.
func TestSDRMP4(t *testing.T) {
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast"}
	mp4 := func(args ...string) []byte {
		return headClip(t, "mp4", append(append(args, x264...), "-movflags", "+faststart")...)
	}
	h264 := mp4("-pix_fmt", "yuv420p")
	for _, tt := range []struct {
		name string
		head []byte
		want bool
	}{
		{"8-bit H.264 mp4", h264, true},
		{"H.264 tagged BT.709", mp4("-pix_fmt", "yuv420p", "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709"), true},
		{"10-bit H.264", mp4("-pix_fmt", "yuv420p10le"), false},
		{"8-bit H.264 tagged PQ", mp4("-pix_fmt", "yuv420p", "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"), false},
		{"HEVC", headClip(t, "mp4", "-c:v", "libx265", "-x265-params", "log-level=error", "-movflags", "+faststart"), false},
		{"H.264 in matroska", headClip(t, "mkv", x264...), false},
		{"two audio tracks", mp4("-f", "lavfi", "-i", "sine", "-map", "0:v", "-map", "1:a", "-map", "1:a", "-t", "0.2", "-pix_fmt", "yuv420p"), false},
		{"one audio track", mp4("-f", "lavfi", "-i", "sine", "-t", "0.2", "-pix_fmt", "yuv420p"), true},
		{"head before a moov at the end", headClip(t, "mp4", x264...)[:1024], false},
		{"moov cut by the head", h264[:bytes.Index(h264, []byte("moov"))+200], false},
		{"empty", nil, false},
	} {
		if got := sdrMP4(tt.head); got != tt.want {
			t.Errorf("%s: sdrMP4 %v, want %v", tt.name, got, tt.want)
		}
	}
}
