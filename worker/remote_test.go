package worker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/storage"
	"github.com/transcoder/transcoder/worker"
)

// Remote inputs and outputs through real servers on loopback: the NATS object store, HTTP GET
// (with a dropped connection resumed), HTTP PUT, and S3 (SeaweedFS) multipart uploads.

// remoteStore is a storage.Store with cfg, closed when the test ends (after the workers that use
// it, which are started later and so stopped first).
func remoteStore(t *testing.T, cfg storage.Config) *storage.Store {
	t.Helper()
	st, err := storage.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// privateStore reaches loopback HTTP servers and the test's object store, with quick resumes.
func privateStore(t *testing.T, e *env) *storage.Store {
	return remoteStore(t, storage.Config{JetStream: e.js, AllowPrivateNetworks: true, RetryBackoff: 10 * time.Millisecond, TempDir: t.TempDir()})
}

func remoteSubmit(t *testing.T, e *env, j *job.Job) string {
	t.Helper()
	if j.Metadata == nil {
		j.Metadata = map[string]string{"test": t.Name()}
	}
	id, err := e.client.Submit(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func remotePut(t *testing.T, st *storage.Store, url string, data []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := st.Create(ctx, url, storage.CreateOptions{ContentType: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

func remoteRead(t *testing.T, st *storage.Store, url string) []byte {
	t.Helper()
	r, err := st.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	defer func() { _ = r.Close() }()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return b
}

func shaOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readFileT(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// remoteObjects lists the live objects of an object store bucket whose names start with prefix,
// with their sizes.
func remoteObjects(t *testing.T, js jetstream.JetStream, bucket, prefix string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, in := range infos {
		if !in.Deleted && strings.HasPrefix(in.Name, prefix) {
			m[in.Name] = int64(in.Size)
		}
	}
	return m
}

// remoteChunks counts the chunk messages left in an object store bucket's stream: objects that
// were aborted or deleted must leave none.
func remoteChunks(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), "OBJ_"+bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter("$O."+bucket+".C.>"))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// playlistURIs lists the URIs of a media playlist: its EXT-X-MAP and its segments.
func playlistURIs(t *testing.T, path string) []string {
	t.Helper()
	var uris []string
	for _, line := range strings.Split(string(readFileT(t, path)), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#EXT-X-MAP:"):
			if m := attrRe.FindStringSubmatch(line[len("#EXT-X-MAP:"):]); m != nil && m[1] == "URI" {
				uris = append(uris, strings.Trim(m[2], `"`))
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			uris = append(uris, line)
		}
	}
	return uris
}

func notFound(t *testing.T, st *storage.Store, url string) {
	t.Helper()
	if info, err := st.Stat(context.Background(), url); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s: Stat = %+v, %v; want ErrNotFound", url, info, err)
	}
}

func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		t.Errorf("%s holds %v after the jobs", dir, names)
	}
}

// noRaceLogs fails the test if a process wrote a race detector report to prefix.PID.
func noRaceLogs(t *testing.T, prefix string) {
	t.Helper()
	logs, _ := filepath.Glob(prefix + ".*")
	for _, l := range logs {
		if b, _ := os.ReadFile(l); len(b) > 0 {
			t.Errorf("worker process data race (%s):\n%s", l, b[:min(len(b), 4000)])
		}
	}
}

func noRetries(t *testing.T, e *env, id string) {
	t.Helper()
	if n := e.events.count(id, job.EventRetrying); n != 0 {
		t.Errorf("%d retrying events, want none: %s", n, e.events.dump())
	}
	if n := e.events.count(id, job.EventStarted); n != 1 {
		t.Errorf("%d started events, want exactly one delivery", n)
	}
}

// TestRemoteObjectStoreRoundTrip: two worker processes with separate temporary directories, the
// input and every output in the NATS object store: an mp4 and an HLS ladder from one job, read
// back, checked against the event, and played; then the mp4 overwritten by a second job.
func TestRemoteObjectStoreRoundTrip(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tmps := []string{t.TempDir(), t.TempDir()}
	// A race in a worker process would only be printed: the race detector logs to files here,
	// which the test reads at the end.
	races := filepath.Join(t.TempDir(), "race")
	e.startWorkerProc("objstore-a", "TMPDIR="+tmps[0], "GORACE=log_path="+races)
	e.startWorkerProc("objstore-b", "TMPDIR="+tmps[1], "GORACE=log_path="+races)
	defer noRaceLogs(t, races)
	st := remoteStore(t, storage.Config{JetStream: e.js})
	ctx := context.Background()

	clip := testenv.MakeClip(t, testenv.Clip{Seconds: 6, Size: "1280x720"})
	remotePut(t, st, "nats://inputs/clip.mp4", readFileT(t, clip))

	id := "objstore-rt"
	mp4URL := "nats://results/" + id + "/out.mp4"
	hlsURL := "nats://results/" + id + "/hls/"
	remoteSubmit(t, e, &job.Job{ID: id, Input: "nats://inputs/clip.mp4", Outputs: []job.Output{
		{URL: mp4URL, Preset: "h264-480p", Video: fastH264},
		{URL: hlsURL, Preset: "hls-abr"},
	}})
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded {
		t.Fatalf("job ended %s %+v", ev.Type, ev.Error)
	}
	t.Logf("job ran on %s", ev.WorkerID)
	if len(ev.Outputs) != 2 {
		t.Fatalf("outputs %+v", ev.Outputs)
	}

	// The mp4: what the event says is what the store holds.
	dir := t.TempDir()
	mp4 := remoteRead(t, st, mp4URL)
	if o := ev.Outputs[0]; o.URL != mp4URL || o.Size != int64(len(mp4)) || o.SHA256 != shaOf(mp4) {
		t.Errorf("mp4 result %+v; the store holds %d bytes, sha256 %s", o, len(mp4), shaOf(mp4))
	}
	if info, err := st.Stat(ctx, mp4URL); err != nil || info.Size != int64(len(mp4)) {
		t.Errorf("Stat %s = %+v, %v", mp4URL, info, err)
	}
	local := filepath.Join(dir, "out.mp4")
	writeFile(t, local, mp4)
	if got := testenv.Probe(t, local, "stream=width,height", "v:0"); got != "854,480" {
		t.Errorf("mp4 is %s, want 854,480", got)
	}
	if d := durationOf(t, local); math.Abs(d-6) > 0.1 {
		t.Errorf("mp4 lasts %.3f s, want 6", d)
	}

	// The ladder: download every object under the prefix, then check it as a player would.
	prefix := id + "/hls/"
	objs := remoteObjects(t, e.js, "results", prefix)
	hlsDir := filepath.Join(dir, "hls")
	var total int64
	for name, size := range objs {
		b := remoteRead(t, st, "nats://results/"+name)
		if int64(len(b)) != size {
			t.Errorf("%s: read %d bytes, listed %d", name, len(b), size)
		}
		total += size
		p := filepath.Join(hlsDir, strings.TrimPrefix(name, prefix))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, b)
	}
	master := readFileT(t, filepath.Join(hlsDir, "master.m3u8"))
	res := ev.Outputs[1]
	if res.Kind != "hls" || res.URL != hlsURL+"master.m3u8" || res.SHA256 != shaOf(master) || res.Width != 1280 || res.Height != 720 || math.Abs(res.Duration-6) > 0.1 {
		t.Errorf("hls result %+v; master sha256 %s", res, shaOf(master))
	}
	if res.Size != total {
		t.Errorf("hls result size %d; the %d objects of the ladder hold %d bytes", res.Size, len(objs), total)
	}
	vars, audio := readMaster(t, filepath.Join(hlsDir, "master.m3u8"))
	var names []string
	for _, v := range vars {
		names = append(names, v.uri)
	}
	if !slices.Equal(names, []string{"720p/index.m3u8", "480p/index.m3u8", "360p/index.m3u8"}) || !slices.Equal(audio, []string{"audio/index.m3u8"}) {
		t.Fatalf("master lists %v and audio %v; want 720p, 480p, 360p and one audio rendition", names, audio)
	}
	listed := map[string]bool{"master.m3u8": true}
	for _, pl := range append(names, audio...) {
		listed[pl] = true
		rdir := filepath.Dir(pl)
		uris := playlistURIs(t, filepath.Join(hlsDir, pl))
		if len(uris) < 3 { // init and two 4 s segments of 6 s
			t.Errorf("%s lists %v", pl, uris)
		}
		for _, u := range uris {
			name := rdir + "/" + u
			listed[name] = true
			info, err := st.Stat(ctx, hlsURL+name)
			if err != nil || info.Size <= 0 || info.Size != objs[prefix+name] {
				t.Errorf("%s: Stat = %+v, %v (listed %d bytes)", name, info, err, objs[prefix+name])
			}
		}
	}
	for name := range objs {
		if !listed[strings.TrimPrefix(name, prefix)] {
			t.Errorf("object %s is in no playlist", name)
		}
	}
	if out, err := exec.Command("ffmpeg", "-v", "error", "-i", filepath.Join(hlsDir, "master.m3u8"), "-map", "0", "-f", "null", "-").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("ffmpeg playing the downloaded master: %v: %s", err, out)
	}

	// A second job writes the same mp4 URL, encoded differently: the object is replaced whole.
	id2 := "objstore-rewrite"
	remoteSubmit(t, e, &job.Job{ID: id2, Input: "nats://inputs/clip.mp4", Outputs: []job.Output{
		{URL: mp4URL, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast", CRF: 40}},
	}})
	ev2 := e.events.terminal(t, id2)
	if ev2.Type != job.EventSucceeded {
		t.Fatalf("rewrite ended %s %+v", ev2.Type, ev2.Error)
	}
	t.Logf("rewrite ran on %s", ev2.WorkerID)
	mp4b := remoteRead(t, st, mp4URL)
	if o := ev2.Outputs[0]; o.SHA256 != shaOf(mp4b) || o.Size != int64(len(mp4b)) || o.SHA256 == ev.Outputs[0].SHA256 {
		t.Errorf("rewrite result %+v; the store holds %d bytes, sha256 %s (first run %s)", o, len(mp4b), shaOf(mp4b), ev.Outputs[0].SHA256)
	}
	if info, err := st.Stat(ctx, mp4URL); err != nil || info.Size != int64(len(mp4b)) {
		t.Errorf("Stat after rewrite = %+v, %v; want %d bytes", info, err, len(mp4b))
	}
	if n := len(remoteObjects(t, e.js, "results", id+"/out.mp4")); n != 1 {
		t.Errorf("%d objects named out.mp4, want 1", n)
	}
	// No spool or part file is left in either worker's temporary directory.
	for _, d := range tmps {
		emptyDir(t, d)
	}
}

// remoteServer is an httptest server on loopback that records every request (and reads PUT
// bodies whole) before handle answers it.
type remoteServer struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []remoteReq
	conns atomic.Int32
}

type remoteReq struct {
	method, path, rng, ctype string
	body                     []byte
	complete                 bool // a PUT body read to its end
}

func newRemoteServer(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int, body []byte)) *remoteServer {
	t.Helper()
	s := &remoteServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rq := remoteReq{method: r.Method, path: r.URL.Path, rng: r.Header.Get("Range"), ctype: r.Header.Get("Content-Type")}
		if r.Method == http.MethodPut {
			b, err := io.ReadAll(r.Body)
			rq.body, rq.complete = b, err == nil
		}
		s.mu.Lock()
		n := len(s.reqs)
		s.reqs = append(s.reqs, rq)
		s.mu.Unlock()
		handle(w, r, n, rq.body)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *remoteServer) requests() []remoteReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// TestRemoteHTTPInput: inputs by HTTP GET through the worker: a transfer cut mid-body is resumed
// with Range; loopback is refused by default (invalid job, never retried); a 404 is invalid
// input; a 503 is retried up to the delivery limit.
func TestRemoteHTTPInput(t *testing.T) {
	t.Parallel()
	clip := testenv.MakeClip(t, testenv.Clip{Seconds: 4, Size: "640x360"})
	data := readFileT(t, clip)
	const etag = `"clip-v1"`
	serve := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "clip.mp4", time.Time{}, bytes.NewReader(data))
	}

	t.Run("dropped-and-resumed", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		cut := len(data) / 3
		var gets atomic.Int32
		srv := newRemoteServer(t, func(w http.ResponseWriter, r *http.Request, _ int, _ []byte) {
			if r.Method != http.MethodGet || gets.Add(1) > 1 {
				serve(w, r)
				return
			}
			// The first GET: headers for the whole clip, a third of it, and the connection
			// closed under the client.
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer func() { _ = conn.Close() }()
			_, _ = fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\nETag: %s\r\nAccept-Ranges: bytes\r\n\r\n", len(data), etag)
			_, _ = buf.Write(data[:cut])
			_ = buf.Flush()
		})
		st := privateStore(t, e)
		e.startWorker("http-resume", func(c *worker.Config) { c.Storage = st })
		out := filepath.Join(e.dir, "out.mp4")
		id := remoteSubmit(t, e, &job.Job{Input: srv.URL + "/media/clip.mp4", Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p", Video: fastH264}}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventSucceeded {
			t.Fatalf("job ended %s %+v; requests %+v (size %d)", ev.Type, ev.Error, srv.requests(), len(data))
		}
		if din, dout := durationOf(t, clip), durationOf(t, out); math.Abs(din-dout) > 0.05 {
			t.Errorf("output lasts %.3f s, input %.3f s", dout, din)
		}
		if o := ev.Outputs[0]; o.SHA256 != sha(t, out) {
			t.Errorf("result %+v, file sha256 %s", o, sha(t, out))
		}
		var gotGets []string
		for _, rq := range srv.requests() {
			if rq.method == http.MethodGet {
				gotGets = append(gotGets, rq.path+" "+rq.rng)
			}
		}
		want := []string{"/media/clip.mp4 ", fmt.Sprintf("/media/clip.mp4 bytes=%d-", cut)}
		if !slices.Equal(gotGets, want) {
			t.Errorf("GETs %q, want %q", gotGets, want)
		}
		noRetries(t, e, id)
	})

	t.Run("loopback-refused-by-default", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		srv := newRemoteServer(t, func(w http.ResponseWriter, r *http.Request, _ int, _ []byte) { serve(w, r) })
		e.startWorker("http-default")
		id := remoteSubmit(t, e, &job.Job{Input: srv.URL + "/clip.mp4", Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, "o.mp4"), Preset: "h264-480p"}}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidJob ||
			!strings.Contains(ev.Error.Reason, "loopback") || !strings.Contains(ev.Error.Reason, "not allowed") {
			t.Fatalf("final %s %+v; want failed invalid_job naming loopback as not allowed", ev.Type, ev.Error)
		}
		noRetries(t, e, id)
		if n := srv.conns.Load(); n != 0 {
			t.Errorf("the server saw %d connections; the policy must refuse before connecting", n)
		}
	})

	t.Run("not-found", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		srv := newRemoteServer(t, func(w http.ResponseWriter, r *http.Request, _ int, _ []byte) { http.NotFound(w, r) })
		st := privateStore(t, e)
		e.startWorker("http-404", func(c *worker.Config) { c.Storage = st })
		id := remoteSubmit(t, e, &job.Job{Input: srv.URL + "/gone.mp4", Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, "o.mp4"), Preset: "h264-480p"}}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidInput || !strings.Contains(ev.Error.Reason, "404") {
			t.Fatalf("final %s %+v; want failed invalid_input (404)", ev.Type, ev.Error)
		}
		noRetries(t, e, id)
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})

	t.Run("unavailable-retried", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		srv := newRemoteServer(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ []byte) {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		})
		st := privateStore(t, e)
		const maxDeliver = 3
		e.startWorker("http-503", func(c *worker.Config) {
			c.Storage = st
			c.MaxDeliver = maxDeliver
			c.Backoff = []time.Duration{20 * time.Millisecond}
		})
		out := filepath.Join(e.dir, "o.mp4")
		id := remoteSubmit(t, e, &job.Job{Input: srv.URL + "/busy.mp4", Outputs: []job.Output{{URL: "file://" + out, Preset: "h264-480p"}}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassTransient || !strings.Contains(ev.Error.Reason, "503") || ev.Attempt != maxDeliver {
			t.Fatalf("final %s attempt %d %+v; want failed transient (503) on attempt %d", ev.Type, ev.Attempt, ev.Error, maxDeliver)
		}
		if n := e.events.count(id, job.EventRetrying); n != maxDeliver-1 {
			t.Errorf("%d retrying events, want %d: %s", n, maxDeliver-1, e.events.dump())
		}
		if n := len(srv.requests()); n != maxDeliver {
			t.Errorf("%d requests, want one per delivery (%d)", n, maxDeliver)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("output exists: %v", err)
		}
	})
}

// TestRemoteHTTPPutOutput: an output by HTTP PUT arrives in one complete request whose body is
// what the event describes; a server answering 500 makes the job retry, then fail.
func TestRemoteHTTPPutOutput(t *testing.T) {
	t.Parallel()
	clip := testenv.MakeClip(t, testenv.Clip{Seconds: 2, Size: "640x360"})

	t.Run("ok", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		srv := newRemoteServer(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ []byte) { w.WriteHeader(http.StatusCreated) })
		st := privateStore(t, e)
		e.startWorker("put-ok", func(c *worker.Config) { c.Storage = st })
		url := srv.URL + "/up/out.mp4"
		id := remoteSubmit(t, e, &job.Job{Input: "file://" + clip, Outputs: []job.Output{{URL: url, Preset: "h264-480p", Video: fastH264}}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventSucceeded {
			t.Fatalf("job ended %s %+v", ev.Type, ev.Error)
		}
		reqs := srv.requests()
		if len(reqs) != 1 || reqs[0].method != http.MethodPut || reqs[0].path != "/up/out.mp4" || !reqs[0].complete || reqs[0].ctype != "video/mp4" {
			t.Fatalf("requests %+v; want one complete PUT of /up/out.mp4 (video/mp4)", reqs)
		}
		body := reqs[0].body
		if o := ev.Outputs[0]; o.URL != url || o.SHA256 != shaOf(body) || o.Size != int64(len(body)) {
			t.Errorf("result %+v; the server got %d bytes, sha256 %s", o, len(body), shaOf(body))
		}
		got := filepath.Join(e.dir, "put.mp4")
		writeFile(t, got, body)
		if din, dout := durationOf(t, clip), durationOf(t, got); math.Abs(din-dout) > 0.1 {
			t.Errorf("uploaded output lasts %.3f s, input %.3f s", dout, din)
		}
	})

	t.Run("server-error", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		srv := newRemoteServer(t, func(w http.ResponseWriter, _ *http.Request, _ int, _ []byte) {
			http.Error(w, "disk full", http.StatusInternalServerError)
		})
		st := privateStore(t, e)
		const maxDeliver = 2
		e.startWorker("put-500", func(c *worker.Config) {
			c.Storage = st
			c.MaxDeliver = maxDeliver
			c.Backoff = []time.Duration{20 * time.Millisecond}
		})
		id := remoteSubmit(t, e, &job.Job{Input: "file://" + clip, Outputs: []job.Output{{URL: srv.URL + "/up/out.mp4", Preset: "h264-480p", Video: fastH264}}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassTransient || !strings.Contains(ev.Error.Reason, "500") {
			t.Fatalf("final %s %+v; want failed transient (HTTP 500)", ev.Type, ev.Error)
		}
		if n := e.events.count(id, job.EventRetrying); n != maxDeliver-1 {
			t.Errorf("%d retrying events, want %d", n, maxDeliver-1)
		}
		reqs := srv.requests()
		if len(reqs) != maxDeliver {
			t.Errorf("%d PUTs, want one per delivery (%d)", len(reqs), maxDeliver)
		}
		// Every PUT was answered 500, so nothing was committed on the server's side; the worker
		// must not have claimed otherwise.
		for _, rq := range reqs {
			if rq.method != http.MethodPut || rq.path != "/up/out.mp4" {
				t.Errorf("unexpected %s %s", rq.method, rq.path)
			}
		}
		if n := e.events.count(id, job.EventSucceeded); n != 0 {
			t.Errorf("%d succeeded events", n)
		}
	})
}

// TestRemoteS3Output: a raw (uncompressed) output, larger than one part, to S3 (SeaweedFS) as a
// multipart upload: complete, as the event describes, and no upload left open.
func TestRemoteS3Output(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a SeaweedFS server")
	}
	t.Parallel()
	endpoint, client := remoteSeaweedFS(t)
	e := setup(t)
	spool := t.TempDir()
	st := remoteStore(t, storage.Config{JetStream: e.js, TempDir: spool, S3: storage.S3Config{
		Endpoint: endpoint, AccessKey: remoteS3Key, SecretKey: remoteS3Secret, PartSize: storage.MinS3PartSize,
	}})
	e.startWorker("s3-out", func(c *worker.Config) { c.Storage = st; c.SpoolDir = spool })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 3})
	url := "s3://" + remoteS3Bucket + "/raw/out.nut"
	id := remoteSubmit(t, e, &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: url, Container: "nut",
		Video: &job.Video{Codec: "raw"}, Audio: &job.Audio{Codec: "pcm"}}}})
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded {
		t.Fatalf("job ended %s %+v", ev.Type, ev.Error)
	}
	o := ev.Outputs[0]
	if o.URL != url || o.Size < 2*storage.MinS3PartSize-storage.MinS3PartSize/2 {
		t.Fatalf("result %+v; want more than one %d-byte part", o, storage.MinS3PartSize)
	}
	info, err := st.Stat(context.Background(), url)
	if err != nil || info.Size != o.Size {
		t.Errorf("Stat = %+v, %v; event size %d", info, err, o.Size)
	}
	body := remoteRead(t, st, url)
	if shaOf(body) != o.SHA256 {
		t.Errorf("downloaded sha256 %s, event %s", shaOf(body), o.SHA256)
	}
	oi, err := client.StatObject(context.Background(), remoteS3Bucket, "raw/out.nut", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	if i := strings.LastIndexByte(oi.ETag, '-'); i >= 0 {
		parts, _ = strconv.Atoi(oi.ETag[i+1:])
	}
	if want := int((o.Size + storage.MinS3PartSize - 1) / storage.MinS3PartSize); parts != want {
		t.Errorf("ETag %q: %d parts, want %d of %d bytes", oi.ETag, parts, want, storage.MinS3PartSize)
	}
	ups, err := client.ListMultipartUploads(context.Background(), remoteS3Bucket, "raw/", "", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open", len(ups.Uploads))
	}
	emptyDir(t, spool)
}

// TestRemoteNothingOnFailure: a job canceled mid-run, or failed at verification, leaves nothing
// under its final names in the object store: no mp4, no master playlist, no segment it had
// already published, and no chunk of an unfinished upload.
func TestRemoteNothingOnFailure(t *testing.T) {
	t.Parallel()

	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		clip := testenv.MakeClip(t, testenv.Clip{Seconds: 12, Size: "640x360"})
		data := readFileT(t, clip)
		cut := len(data) * 85 / 100
		gate := make(chan struct{})
		// Most of the input at once, the rest only when the gate opens (never, here): the job is
		// mid-run, with its ladder's first segments published, until it is canceled.
		srv := newRemoteServer(t, func(w http.ResponseWriter, r *http.Request, _ int, _ []byte) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			w.Header().Set("Content-Type", "video/mp4")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(data[:cut])
			w.(http.Flusher).Flush()
			select {
			case <-gate:
				_, _ = w.Write(data[cut:])
			case <-r.Context().Done():
			}
		})
		t.Cleanup(func() { close(gate) })
		st := privateStore(t, e)
		ctx := context.Background()
		obs, err := e.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "results"})
		if err != nil {
			t.Fatal(err)
		}
		watch, err := obs.Watch(ctx, jetstream.UpdatesOnly())
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = watch.Stop() }()
		e.startWorker("cancel-remote", func(c *worker.Config) {
			c.Storage = st
			// The ladder probes the head of its input first: keep the head within what the
			// server sends before the gate.
			c.ProbeBytes = 1 << 20
			// While the input is held, nothing advances and no heartbeat goes out: keep NATS
			// from redelivering meanwhile.
			c.AckWait = time.Minute
		})
		id := remoteSubmit(t, e, &job.Job{ID: "cancel-remote", Input: srv.URL + "/slow.mp4", Outputs: []job.Output{
			{URL: "nats://results/cancel/x.mp4", Preset: "h264-480p", Video: fastH264},
			{URL: "nats://results/cancel/hls/", Preset: "hls-abr"},
		}})
		timeout := time.NewTimer(waitLong)
		defer timeout.Stop()
	wait:
		for {
			select {
			case in := <-watch.Updates():
				if in != nil && !in.Deleted && strings.HasPrefix(in.Name, "cancel/hls/") && strings.HasSuffix(in.Name, ".m4s") {
					t.Logf("segment %s published; canceling", in.Name)
					break wait
				}
			case <-timeout.C:
				t.Fatalf("no segment published within %s: %s", waitLong, e.events.dump())
			}
		}
		if err := e.client.Cancel(ctx, id); err != nil {
			t.Fatal(err)
		}
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventCanceled {
			t.Fatalf("final %s %+v, want canceled", ev.Type, ev.Error)
		}
		notFound(t, st, "nats://results/cancel/x.mp4")
		notFound(t, st, "nats://results/cancel/hls/master.m3u8")
		if objs := remoteObjects(t, e.js, "results", ""); len(objs) != 0 {
			t.Errorf("objects left after cancel: %v", objs)
		}
		if n := remoteChunks(t, e.js, "results"); n != 0 {
			t.Errorf("%d chunks left in the bucket's stream", n)
		}
	})

	t.Run("truncated-input", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		st := remoteStore(t, storage.Config{JetStream: e.js})
		full := readFileT(t, testenv.MakeClip(t, testenv.Clip{Seconds: 6, Size: "640x360"}))
		remotePut(t, st, "nats://inputs/trunc.mp4", full[:len(full)*2/5])
		e.startWorker("trunc-remote")
		id := remoteSubmit(t, e, &job.Job{Input: "nats://inputs/trunc.mp4", Outputs: []job.Output{
			{URL: "nats://results/trunc/x.mp4", Preset: "h264-480p", Video: fastH264},
			{URL: "nats://results/trunc/hls/", Preset: "hls-abr"},
		}})
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidInput || !strings.Contains(ev.Error.Reason, "truncated") {
			t.Fatalf("final %s %+v, want failed invalid_input (truncated)", ev.Type, ev.Error)
		}
		noRetries(t, e, id)
		notFound(t, st, "nats://results/trunc/x.mp4")
		notFound(t, st, "nats://results/trunc/hls/master.m3u8")
		if objs := remoteObjects(t, e.js, "results", ""); len(objs) != 0 {
			t.Errorf("objects left after the failure: %v", objs)
		}
		if n := remoteChunks(t, e.js, "results"); n != 0 {
			t.Errorf("%d chunks left in the bucket's stream", n)
		}
	})
}

// SeaweedFS for the S3 tests (internal/testenv).
const (
	remoteS3Key    = testenv.S3Key
	remoteS3Secret = testenv.S3Secret
	remoteS3Bucket = "videos"
)

func remoteSeaweedFS(t *testing.T) (string, *minio.Core) {
	t.Helper()
	return testenv.SeaweedFS(t, remoteS3Bucket)
}
