package worker_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/sandbox"
	"github.com/transcoder/transcoder/worker"
)

// TestSandboxedWorker: a worker whose ffmpeg runs sandboxed serves a streamed job and one whose
// input must be spooled (ffmpeg reads a spool file as the sandbox user, under Landlock), and
// shows the layers in its registry entry and /readyz.
func TestSandboxedWorker(t *testing.T) {
	t.Parallel()
	e := setup(t)
	spool := t.TempDir()
	for p := spool; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil { // the sandbox user must reach the spool
			t.Fatal(err)
		}
	}
	sb, err := sandbox.New(sandbox.Config{SpoolDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	runner, err := ffmpeg.New(ffmpeg.Config{KillDelay: time.Second, Sandbox: sb})
	if err != nil {
		t.Fatal(err)
	}
	w := e.startWorker("boxed", func(c *worker.Config) { c.FFmpeg, c.SpoolDir = runner, spool })
	for _, clip := range []testenv.Clip{{Seconds: 1}, {Seconds: 1, MoovAtEnd: true}} {
		id := e.submit(testenv.MakeClip(t, clip), "h264-480p", filepath.Join(e.dir, "out.mp4"))
		if ev := e.events.terminal(t, id); ev.Type != job.EventSucceeded {
			t.Fatalf("moov at end %v: %s %+v", clip.MoovAtEnd, ev.Type, ev.Error)
		}
	}
	ws, err := e.client.Workers(context.Background())
	if err != nil || len(ws) != 1 {
		t.Fatalf("registry: %+v %v", ws, err)
	}
	if st := ws[0].Sandbox; st.Mode != sandbox.ModeOn || len(st.Layers) != len(sb.Status().Layers) {
		t.Errorf("registry sandbox %+v, want %+v", st, sb.Status())
	}
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || !strings.Contains(body, sb.Status().String()) {
		t.Errorf("readyz %d %q, want the sandbox's layers", code, body)
	}
}
