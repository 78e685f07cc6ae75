package worker_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// hostileReject is how long a hostile job may take from publish to its failed event. Every case
// here fails in well under a second on a quiet machine; the bound leaves room for a loaded CI.
const hostileReject = 20 * time.Second

// hostileEnv is one NATS server and one worker that every subtest of a hostile test shares.
type hostileEnv struct {
	*env
	w *worker.Worker
}

func hostileSetup(t *testing.T, lim job.Limits) *hostileEnv {
	t.Helper()
	e := setup(t)
	cfg := testConfig(e.nc, e.runner, e.presets, "hostile", t.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.Default()
	}
	cfg.Limits = lim
	w, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.stopWorker(w) }) // after every subtest: checks the ring is whole
	return &hostileEnv{env: e, w: w}
}

// publish sends a raw job, as any NATS client would, and waits for its terminal event. It
// checks the job was tried once and never retried, and returns the event and the time from
// publish to it.
func (h *hostileEnv) publish(t *testing.T, id string, raw []byte) (job.Event, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := h.nc.Publish("transcode.jobs.normal", raw); err != nil {
		t.Fatal(err)
	}
	ev := h.events.waitFor(t, hostileReject, id+" terminal", func(ev job.Event) bool { return ev.JobID == id && ev.Type.Terminal() })
	took := time.Since(start)
	for _, e := range h.events.of(id) {
		if e.Type == job.EventRetrying || e.Attempt != 1 {
			t.Errorf("%s was retried: %s attempt %d %+v", id, e.Type, e.Attempt, e.Error)
		}
	}
	return ev, took
}

// reject publishes a job reading in and checks it fails with class; it logs the time to reject.
func (h *hostileEnv) reject(t *testing.T, in string, class job.Class, reason string) {
	t.Helper()
	id := "hostile-" + strings.NewReplacer("/", "-", ".", "-").Replace(t.Name()[strings.IndexByte(t.Name(), '/')+1:])
	out := filepath.Join(h.dir, id+".mp4")
	raw, _ := json.Marshal(map[string]any{"id": id, "input": "file://" + in, "preset": "h264-480p", "outputs": []map[string]string{{"url": "file://" + out}}})
	ev, took := h.publish(t, id, raw)
	if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != class {
		t.Fatalf("%s ended %s %+v; want failed %s", id, ev.Type, ev.Error, class)
	}
	t.Logf("rejected in %s: %s: %s", took.Round(time.Millisecond), ev.Error.Class, ev.Error.Reason)
	if !strings.Contains(ev.Error.Reason, reason) {
		t.Errorf("reason %q does not say %q", ev.Error.Reason, reason)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output of a rejected job exists: %v", err)
	}
}

func hostileFFmpeg(t *testing.T, args ...string) {
	t.Helper()
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, b)
	}
}

func hostileWrite(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func hostileRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// canary is a loopback HTTP server and a local media file that a hostile playlist points at:
// any connection to the one or open of the other means ffmpeg followed the playlist.
type canary struct {
	url   string
	file  string
	conns atomic.Int32
	reqs  atomic.Int32
	ifd   int
}

func newCanary(t *testing.T, dir string) *canary {
	t.Helper()
	c := &canary{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c.reqs.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c.url = srv.URL
	// A real media file: if ffmpeg opened it, it would play it.
	c.file = hostileWrite(t, filepath.Join(dir, "canary.ts"), hostileRead(t, testenv.MakeClip(t, testenv.Clip{Seconds: 1, Size: "64x48", Container: "ts"})))
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Close(fd) })
	if _, err := unix.InotifyAddWatch(fd, c.file, unix.IN_OPEN|unix.IN_ACCESS); err != nil {
		t.Fatal(err)
	}
	c.ifd = fd
	return c
}

// opens returns how many open or access events the canary file had since the last call. The
// kernel queues them when the syscall happens, so once the job's ffmpeg and ffprobe have
// exited, every event they caused is readable.
func (c *canary) opens(t *testing.T) int {
	t.Helper()
	n := 0
	buf := make([]byte, 4096)
	for {
		m, err := unix.Read(c.ifd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= m; {
			n++
			off += unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(buf[off+12:off+16]))
		}
	}
}

// untouched checks nothing reached the canary, then that the canary does see a reader: a watch
// or a server that saw nothing because it was broken would prove nothing.
func (c *canary) untouched(t *testing.T) {
	t.Helper()
	if n := c.opens(t); n != 0 {
		t.Errorf("the canary file was opened or read (%d inotify events)", n)
	}
	if _, err := os.ReadFile(c.file); err != nil {
		t.Fatal(err)
	}
	if n := c.opens(t); n == 0 {
		t.Error("the inotify watch does not see the test's own read of the canary")
	}
	// The server accepts in order: once this request is served, any earlier connection has
	// been counted.
	resp, err := http.Get(c.url + "/self-check")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if n, r := c.conns.Load(), c.reqs.Load(); n != 1 || r != 1 {
		t.Errorf("the canary server saw %d connections and %d requests; want only the test's own", n, r)
	}
}

// TestHostilePlaylists: playlists disguised as mp4 files (HLS, DASH, ffconcat) that point at a
// loopback HTTP server and at a local file: ffmpeg and ffprobe read only pipe:0 and refuse the
// playlist demuxers, so nothing is fetched or opened, and the job fails as invalid_input.
func TestHostilePlaylists(t *testing.T) {
	t.Parallel()
	h := hostileSetup(t, job.Limits{})
	playlists := map[string]func(url, file string) string{
		"hls": func(url, file string) string {
			return "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n" +
				"#EXTINF:1.0,\n" + url + "/seg0.ts\n#EXTINF:1.0,\nfile://" + file + "\n#EXTINF:1.0,\n" + file + "\n#EXT-X-ENDLIST\n"
		},
		"dash": func(url, file string) string {
			rep := func(id, base string) string {
				return `<Representation id="` + id + `" bandwidth="100000" codecs="avc1.42c00a" width="64" height="48"><BaseURL>` + base + `</BaseURL><SegmentBase indexRange="0-100"/></Representation>`
			}
			return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
				`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">` +
				`<Period><AdaptationSet mimeType="video/mp4">` + rep("1", url+"/v.mp4") + rep("2", "file://"+file) + `</AdaptationSet></Period></MPD>` + "\n"
		},
		"ffconcat": func(url, file string) string {
			return "ffconcat version 1.0\nfile '" + url + "/a.ts'\nfile '" + file + "'\nfile 'file:" + file + "'\n"
		},
	}
	for name, body := range playlists {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			c := newCanary(t, dir)
			in := hostileWrite(t, filepath.Join(dir, name+".mp4"), []byte(body(c.url, c.file)))
			h.reject(t, in, job.ClassInvalidInput, "not on whitelist")
			c.untouched(t)
		})
	}
}

// TestHostileJobSyntax: input and output URLs in ffmpeg's own syntax (a protocol, or an option)
// never reach ffmpeg: the job fails validation as invalid_job.
func TestHostileJobSyntax(t *testing.T) {
	t.Parallel()
	h := hostileSetup(t, job.Limits{})
	good := testenv.MakeClip(t, testenv.Clip{Seconds: 1, Size: "64x48"})
	kinds := map[string]string{
		"concat":  "concat:" + good + "|/etc/passwd",
		"subfile": "subfile,,start,0,end,1000,,:" + good,
		"file":    "file:" + good,
		"data":    "data:video/mp4;base64,AAAAIGZ0eXBpc29tAAACAGlzb21pc28yYXZjMW1wNDE=",
		"dash":    "-filter_complex",
	}
	for kind, url := range kinds {
		for _, field := range []string{"input", "output"} {
			t.Run(kind+"-"+field, func(t *testing.T) {
				t.Parallel()
				id := "syntax-" + kind + "-" + field
				in, out := "file://"+good, "file://"+filepath.Join(h.dir, id+".mp4")
				want := "input"
				if field == "input" {
					in = url
				} else {
					out, want = url, "outputs[0].url"
				}
				raw, _ := json.Marshal(map[string]any{"id": id, "input": in, "preset": "h264-480p", "outputs": []map[string]string{{"url": out}}})
				ev, took := h.publish(t, id, raw)
				if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidJob {
					t.Fatalf("ended %s %+v; want failed invalid_job", ev.Type, ev.Error)
				}
				t.Logf("rejected in %s: %s: %s", took.Round(time.Millisecond), ev.Error.Class, ev.Error.Reason)
				if !strings.Contains(ev.Error.Reason, want) {
					t.Errorf("reason %q does not name %s", ev.Error.Reason, want)
				}
			})
		}
	}
}

// TestHostileMedia: decompression bombs and damaged files fail as invalid_input, once, quickly.
func TestHostileMedia(t *testing.T) {
	t.Parallel()
	h := hostileSetup(t, job.Limits{})
	dir := t.TempDir()
	clip := func(t *testing.T) []byte {
		return hostileRead(t, testenv.MakeClip(t, testenv.Clip{Seconds: 6, Size: "160x120"}))
	}
	cases := []struct {
		name   string
		make   func(t *testing.T) string
		reason string
	}{
		{"over-8k", func(t *testing.T) string {
			return testenv.MakeClip(t, testenv.Clip{Seconds: 1, Size: "8448x64", Rate: 5, NoAudio: true})
		}, "8448x64 frames are larger"},
		// One 15000x15000 PNG frame in matroska: 28 KB on disk, 675 MB decoded.
		{"png-15000x15000", func(t *testing.T) string {
			p, err := filepath.Abs("testdata/hostile/png-15000x15000.mkv")
			if err != nil {
				t.Fatal(err)
			}
			return p
		}, "15000x15000"},
		// A GIF whose logical screen is 16000x16000 (1 GB as RGBA): gif is not an allowed demuxer.
		{"gif-canvas", func(t *testing.T) string {
			return hostileWrite(t, filepath.Join(dir, "canvas.mp4"), hugeCanvas(t, hostileGIF(t, dir, "gif")))
		}, "not on whitelist"},
		// The same GIF frame in matroska, which is allowed: the container says 16x16, the GIF
		// inside says 16000x16000, and the decoder's -max_pixels refuses it.
		{"gif-canvas-in-mkv", func(t *testing.T) string {
			return hostileWrite(t, filepath.Join(dir, "canvas.mkv"), hugeCanvas(t, hostileGIF(t, dir, "mkv")))
		}, "16000x16000 exceeds specified max pixel count"},
		{"21-streams", func(t *testing.T) string {
			p := filepath.Join(dir, "streams.mkv")
			args := []string{"-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5:duration=1", "-f", "lavfi", "-i", "sine=duration=1:sample_rate=8000", "-map", "0:v"}
			for range 20 {
				args = append(args, "-map", "1:a")
			}
			hostileFFmpeg(t, append(args, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "8k", p)...)
			return p
		}, "21 streams, more than the limit of 16"},
		// Ten frames, then ten more 13 hours later: the container's duration says 13h.
		{"ts-gap-13h", func(t *testing.T) string {
			p := filepath.Join(dir, "gap.mkv")
			hostileFFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2", "-vf", "setpts='if(gte(N,10),PTS+46800/TB,PTS)'", "-c:v", "libx264", "-preset", "ultrafast", p)
			return p
		}, "13h0m2s long, more than the limit of 12h0m0s"},
		{"truncated", func(t *testing.T) string {
			b := clip(t)
			return hostileWrite(t, filepath.Join(dir, "truncated.mp4"), b[:len(b)/2])
		}, "truncated"},
		{"corrupt", func(t *testing.T) string {
			b := clip(t)
			rng := rand.New(rand.NewSource(1))
			for i := len(b)/2 - 16<<10; i < len(b)/2+16<<10; i++ {
				b[i] = byte(rng.Intn(256))
			}
			return hostileWrite(t, filepath.Join(dir, "corrupt.mp4"), b)
		}, "damaged"},
		{"encrypted", func(t *testing.T) string {
			p := filepath.Join(dir, "cenc.mp4")
			hostileFFmpeg(t, "-i", testenv.MakeClip(t, testenv.Clip{Seconds: 6, Size: "160x120"}), "-c", "copy",
				"-encryption_scheme", "cenc-aes-ctr", "-encryption_key", "00112233445566778899aabbccddeeff",
				"-encryption_kid", "00112233445566778899aabbccddeeff", "-movflags", "+faststart", p)
			return p
		}, ""},
		{"header-only", func(t *testing.T) string {
			b := clip(t)
			end := moovEnd(t, b)
			return hostileWrite(t, filepath.Join(dir, "header-only.mp4"), b[:end])
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h.reject(t, c.make(t), job.ClassInvalidInput, c.reason)
		})
	}
}

// TestHostileOutputCaps: a matroska stream without a duration in its header (as a live muxer
// writes it) whose timestamps jump 13 hours probes as short, and ffmpeg would fill the gap with
// 468,000 duplicated frames. The output caps from the limits (-t MaxDuration, -fs
// MaxOutputBytes) stop it: the job ends quickly, and an output cut at a cap is reported as
// "output limit reached" (invalid_input) rather than published.
func TestHostileOutputCaps(t *testing.T) {
	t.Parallel()
	const maxDuration = 4 * time.Second
	h := hostileSetup(t, job.Limits{MaxDuration: maxDuration})
	gap := filepath.Join(t.TempDir(), "live-gap.mkv")
	hostileFFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10:duration=2", "-vf", "setpts='if(gte(N,10),PTS+46800/TB,PTS)'",
		"-c:v", "libx264", "-preset", "ultrafast", "-f", "matroska", "-live", "1", gap)
	out := filepath.Join(h.dir, "capped.mp4")
	raw, _ := json.Marshal(map[string]any{"id": "capped", "input": "file://" + gap, "preset": "h264-480p", "outputs": []map[string]string{{"url": "file://" + out}}})
	ev, took := h.publish(t, "capped", raw)
	t.Logf("ended %s in %s: %+v", ev.Type, took.Round(time.Millisecond), ev.Error)
	switch {
	case ev.Type == job.EventSucceeded:
		// ffmpeg dropped the frames past the cap (no duplicates): what is left is short.
		d := durationOf(t, out)
		t.Logf("output: %.2fs (input: 1s of frames, then 1s more 13h later)", d)
		if d > maxDuration.Seconds()+0.5 {
			t.Errorf("output is %.1fs long; the cap is %s", d, maxDuration)
		}
	case ev.Type == job.EventFailed && ev.Error.Class == job.ClassInvalidInput && strings.Contains(ev.Error.Reason, "output limit reached"):
		if _, err := os.Stat(out); err == nil {
			t.Error("a capped output was published")
		}
	default:
		t.Errorf("capped job ended %s %+v", ev.Type, ev.Error)
	}
}

// hostileGIF makes a one-frame 16x16 GIF in container ("gif" or "mkv").
func hostileGIF(t *testing.T, dir, container string) []byte {
	t.Helper()
	p := filepath.Join(dir, "small."+container)
	hostileFFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=16x16:rate=1:duration=1", "-frames:v", "1", "-c:v", "gif", p)
	return hostileRead(t, p)
}

// hugeCanvas sets the logical screen of every GIF header in b to 16000x16000.
func hugeCanvas(t *testing.T, b []byte) []byte {
	t.Helper()
	n := 0
	for i := 0; ; {
		j := strings.Index(string(b[i:]), "GIF89a")
		if j < 0 {
			break
		}
		i += j + 6
		binary.LittleEndian.PutUint16(b[i:], 16000)
		binary.LittleEndian.PutUint16(b[i+2:], 16000)
		n++
	}
	if n == 0 {
		t.Fatal("no GIF header found")
	}
	return b
}

// moovEnd returns where the moov box of a faststart mp4 ends: the file cut there has the
// header and no media.
func moovEnd(t *testing.T, b []byte) int {
	t.Helper()
	for off := 0; off+8 <= len(b); {
		size := int(binary.BigEndian.Uint32(b[off:]))
		if string(b[off+4:off+8]) == "moov" {
			return off + size
		}
		if size < 8 {
			break
		}
		off += size
	}
	t.Fatal("no moov box")
	return 0
}

// TestOutputSizeCap: an output that reaches max_output_bytes is cut by ffmpeg (-fs) and then
// reported as a limit reached, not published as a short success, and not retried.
func TestOutputSizeCap(t *testing.T) {
	t.Parallel()
	h := hostileSetup(t, job.Limits{MaxOutputBytes: 64 << 10})
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 4, Size: "320x240"})
	out := filepath.Join(h.dir, "too-big.mp4")
	raw, _ := json.Marshal(map[string]any{"id": "too-big", "input": "file://" + in, "preset": "h264-480p", "outputs": []map[string]string{{"url": "file://" + out}}})
	ev, took := h.publish(t, "too-big", raw)
	t.Logf("ended %s in %s: %+v", ev.Type, took.Round(time.Millisecond), ev.Error)
	if ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidInput || !strings.Contains(ev.Error.Reason, "output limit reached") {
		t.Errorf("ended %s %+v; want failed invalid_input, output limit reached", ev.Type, ev.Error)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a cut output was published")
	}
}
