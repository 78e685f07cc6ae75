package worker_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/storage"
	"github.com/transcoder/transcoder/worker"
)

// ffmpegStarts records the argv and pid of every ffmpeg a worker starts, by job, and can run
// a fault when one starts.
type ffmpegStarts struct {
	mu    sync.Mutex
	argv  map[string][]string
	cmd   map[string][]string // /proc/PID/cmdline: what the process really runs
	fault func(jobID string)
}

func newFFmpegStarts() *ffmpegStarts {
	return &ffmpegStarts{argv: map[string][]string{}, cmd: map[string][]string{}}
}

func (f *ffmpegStarts) hook(c *worker.Config) {
	c.Hooks.FFmpegStarted = func(id string, argv []string, pid int) {
		raw, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		f.mu.Lock()
		f.argv[id] = argv
		f.cmd[id] = strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		fault := f.fault
		f.mu.Unlock()
		if fault != nil {
			fault(id)
		}
	}
}

func (f *ffmpegStarts) of(id string) (argv, cmdline []string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	argv, ok = f.argv[id]
	return argv, f.cmd[id], ok
}

// TestRollbackEveryKind: a job whose last output cannot be committed (a directory appears
// under its name while ffmpeg runs, after the checks before encoding) fails, and every output
// it had already published is removed, whatever its kind; the failed event lists them.
func TestRollbackEveryKind(t *testing.T) {
	t.Parallel()
	e := setup(t)
	starts := newFFmpegStarts()
	var blockers sync.Map // job id -> the path that becomes a directory
	starts.fault = func(id string) {
		if p, ok := blockers.Load(id); ok {
			if err := os.MkdirAll(filepath.Join(p.(string), "in-the-way"), 0o755); err != nil {
				t.Error(err)
			}
		}
	}
	e.startWorker("rollback", starts.hook)
	st := remoteStore(t, storage.Config{JetStream: e.js})
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 3, Size: "640x360"})
	type kind struct {
		name string
		out  func(dir, id string) job.Output
		gone func(t *testing.T, dir, id string)
	}
	fileGone := func(name string) func(*testing.T, string, string) {
		return func(t *testing.T, dir, _ string) { noFile(t, filepath.Join(dir, name)) }
	}
	for _, k := range []kind{
		{"file", func(dir, _ string) job.Output {
			return job.Output{URL: "file://" + filepath.Join(dir, "first.mp4"), Preset: "h264-480p", Video: fastH264}
		}, fileGone("first.mp4")},
		{"faststart", func(dir, _ string) job.Output {
			return job.Output{URL: "file://" + filepath.Join(dir, "first.mp4"), Preset: "h264-480p", Video: fastH264, Faststart: true}
		}, fileGone("first.mp4")},
		{"object", func(_, id string) job.Output {
			return job.Output{URL: "nats://rollback/" + id + "/first.mp4", Preset: "h264-480p", Video: fastH264}
		}, func(t *testing.T, _, id string) { notFound(t, st, "nats://rollback/"+id+"/first.mp4") }},
		{"ladder", func(dir, _ string) job.Output {
			return job.Output{URL: "file://" + filepath.Join(dir, "hls"), Preset: "hls-abr"}
		}, func(t *testing.T, dir, _ string) { noFiles(t, filepath.Join(dir, "hls")) }},
		{"frames", func(dir, _ string) job.Output {
			return job.Output{URL: "file://" + filepath.Join(dir, "frames"), Preset: "thumbnails", Thumbnails: &job.Thumbnails{Count: 3}}
		}, func(t *testing.T, dir, _ string) { noFiles(t, filepath.Join(dir, "frames")) }},
		{"sprite", func(dir, _ string) job.Output {
			return job.Output{URL: "file://" + filepath.Join(dir, "sprite"), Preset: "sprite", Thumbnails: &job.Thumbnails{Count: 4, Columns: 2}}
		}, func(t *testing.T, dir, _ string) { noFiles(t, filepath.Join(dir, "sprite")) }},
		{"poster", func(dir, _ string) job.Output {
			return job.Output{URL: "file://" + filepath.Join(dir, "poster.jpg"), Preset: "poster"}
		}, fileGone("poster.jpg")},
	} {
		t.Run(k.name, func(t *testing.T) {
			dir := t.TempDir()
			id := "rollback-" + k.name
			last := filepath.Join(dir, "last.mp4")
			blockers.Store(id, last)
			remoteSubmit(t, e, &job.Job{ID: id, Input: "file://" + in, Outputs: []job.Output{
				k.out(dir, id),
				{URL: "file://" + last, Preset: "h264-480p", Video: fastH264},
			}})
			ev := e.events.terminal(t, id)
			if ev.Type != job.EventFailed {
				t.Fatalf("job ended %s, want failed: %+v", ev.Type, ev.Error)
			}
			if len(ev.Error.Removed) == 0 {
				t.Errorf("the failed event names no removed output: %+v", ev.Error)
			}
			k.gone(t, dir, id)
			noParts(t, dir)
		})
	}
}

// noFiles: no file under dir (the directories a ladder's renditions made may stay, empty).
func noFiles(t *testing.T, dir string) {
	t.Helper()
	var left []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("left behind by a failed job: %v", left)
	}
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s left behind by a failed job", path)
	}
}

// TestDestinationCheckedFirst: an output whose final name is a directory can never be
// committed: the job fails as invalid_job before ffmpeg starts, and is not retried.
func TestDestinationCheckedFirst(t *testing.T) {
	t.Parallel()
	e := setup(t)
	starts := newFFmpegStarts()
	e.startWorker("dest", starts.hook)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2, Size: "320x240"})
	dir := t.TempDir()
	taken := filepath.Join(dir, "taken.mp4")
	if err := os.Mkdir(taken, 0o755); err != nil {
		t.Fatal(err)
	}
	id := e.submit(in, "h264-480p", filepath.Join(dir, "ok.mp4"), taken)
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidJob {
		t.Fatalf("job ended %s %+v, want failed invalid_job", ev.Type, ev.Error)
	}
	if _, _, ok := starts.of(id); ok {
		t.Error("ffmpeg ran for a job whose destination was known to be unwritable")
	}
	if n := e.events.count(id, job.EventRetrying); n > 0 {
		t.Errorf("retried %d times", n)
	}
	noFile(t, filepath.Join(dir, "ok.mp4"))
}

// TestExplainIsWhatRuns: explain prints exactly the argv the worker's ffmpeg runs for that
// job id: with a faststart output (ffmpeg writes a spool file) and on a worker with two slots
// (encoder threads).
func TestExplainIsWhatRuns(t *testing.T) {
	t.Parallel()
	e := setup(t)
	starts := newFFmpegStarts()
	w := e.startWorker("explain", starts.hook, func(c *worker.Config) { c.Slots = 2 })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2, Size: "640x360"})
	for _, tc := range []struct {
		name string
		out  job.Output
	}{
		{"faststart", job.Output{Preset: "h264-480p", Video: fastH264, Faststart: true}},
		{"two-slots", job.Output{Preset: "h264-720p"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.out
			o.URL = "file://" + filepath.Join(t.TempDir(), "out.mp4")
			j := &job.Job{ID: "explain-" + tc.name, Input: "file://" + in, Outputs: []job.Output{o}}
			ex, err := w.Explain(context.Background(), j)
			if err != nil {
				t.Fatal(err)
			}
			remoteSubmit(t, e, j)
			if ev := e.events.terminal(t, j.ID); ev.Type != job.EventSucceeded {
				t.Fatalf("job ended %s %+v", ev.Type, ev.Error)
			}
			argv, cmdline, ok := starts.of(j.ID)
			if !ok {
				t.Fatal("no ffmpeg started")
			}
			if !slices.Equal(ex.Argv, argv) {
				t.Errorf("explain:\n%q\nran:\n%q", ex.Argv, argv)
			}
			if len(cmdline) < 2 || !slices.Equal(cmdline[1:], argv) {
				t.Errorf("the process runs\n%q\nnot\n%q", cmdline, argv)
			}
			want := "-threads"
			if tc.name == "faststart" {
				want = "transcoder-faststart-" + j.ID
			}
			if !slices.ContainsFunc(ex.Argv, func(a string) bool { return strings.Contains(a, want) }) {
				t.Errorf("explain has no %s: %q", want, ex.Argv)
			}
		})
	}
}
