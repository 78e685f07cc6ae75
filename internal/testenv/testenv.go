// Package testenv gives tests real parts: an embedded nats-server per test and media made by
// ffmpeg's lavfi sources. Nothing here fakes a dependency.
package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/transcoder/transcoder/natsembed"
)

// NATS starts an embedded nats-server with JetStream on a free loopback port for the test and
// returns it with a client connection; both are closed when the test ends.
func NATS(t testing.TB) (*natsembed.Server, *nats.Conn) {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return ns, nc
}

// Clip describes generated media.
type Clip struct {
	Seconds   float64
	Size      string // WxH; default 320x240
	Rate      int    // default 25
	NoAudio   bool
	NoVideo   bool
	Codec     string // default libx264
	Container string // file extension; default mp4
	// MoovAtEnd leaves the mp4 index after the media (no faststart), so it cannot stream.
	MoovAtEnd bool
	Extra     []string // more output options
}

var (
	cacheOnce sync.Once
	cacheDir  string
	cacheErr  error
	cacheMu   sync.Mutex
)

// CacheDir is a per-process directory for generated media; Cleanup removes it (call it from
// TestMain after m.Run).
func CacheDir() (string, error) {
	cacheOnce.Do(func() { cacheDir, cacheErr = os.MkdirTemp("", "transcoder-testmedia-") })
	return cacheDir, cacheErr
}

// Cleanup removes the media cache.
func Cleanup() {
	if cacheDir != "" {
		_ = os.RemoveAll(cacheDir)
	}
}

// MakeClip generates the clip with ffmpeg (testsrc2 and sine) once per test binary and returns
// its path. Tests must not modify it.
func MakeClip(t testing.TB, c Clip) string {
	t.Helper()
	if c.Size == "" {
		c.Size = "320x240"
	}
	if c.Rate == 0 {
		c.Rate = 25
	}
	if c.Codec == "" {
		c.Codec = "libx264"
	}
	if c.Container == "" {
		c.Container = "mp4"
	}
	args := []string{"-hide_banner", "-v", "error", "-y"}
	if !c.NoVideo {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", c.Size, c.Rate))
	}
	if !c.NoAudio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", fmt.Sprint(c.Seconds))
	if !c.NoVideo {
		args = append(args, "-c:v", c.Codec, "-pix_fmt", "yuv420p")
		if c.Codec == "libx264" {
			args = append(args, "-preset", "ultrafast")
		}
	}
	if !c.NoAudio {
		args = append(args, "-c:a", "aac")
	}
	if c.Container == "mp4" && !c.MoovAtEnd {
		args = append(args, "-movflags", "+faststart")
	}
	args = append(args, c.Extra...)
	key := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	dir, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, hex.EncodeToString(key[:8])+"."+c.Container)
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if _, err := os.Stat(path); err == nil {
		return path
	}
	tmp := path + ".tmp." + c.Container
	out, err := exec.Command("ffmpeg", append(args, tmp)...).CombinedOutput()
	if err != nil {
		t.Fatalf("make clip: %v: %s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// Probe returns ffprobe's answer for one entry, e.g. Probe(t, f, "format=duration").
func Probe(t testing.TB, path, entries string, stream string) string {
	t.Helper()
	args := []string{"-v", "error", "-show_entries", entries, "-of", "csv=p=0"}
	if stream != "" {
		args = append(args, "-select_streams", stream)
	}
	out, err := exec.Command("ffprobe", append(args, path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return strings.TrimSpace(string(out))
}

// Main runs a package's tests, removes the generated media, and then fails the run if any
// goroutine was leaked: the TestMain of every package that uses testenv.
func Main(m *testing.M) int {
	code := m.Run()
	Cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
