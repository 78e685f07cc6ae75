package media_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/transcoder/transcoder/bufpool"
	"github.com/transcoder/transcoder/configs"
	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/storage"
)

// engine is an engine on real ffmpeg with the built-in presets and a spool of the test's own.
func engine(t *testing.T) *media.Engine {
	t.Helper()
	return engineWithSpool(t, t.TempDir())
}

// engineWithSpool is engine with its spool (and its storage's temporary files) in spool.
func engineWithSpool(t *testing.T, spool string) *media.Engine {
	t.Helper()
	runner, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	presets, err := job.ParsePresets(configs.Presets)
	if err != nil {
		t.Fatal(err)
	}
	st, err := storage.New(storage.Config{TempDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	e, err := media.New(media.Config{FFmpeg: runner, Storage: st, Presets: presets, SpoolDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// reservation is a ring of exactly one task's buffers: a task that took more would block.
func reservation(t *testing.T, e *media.Engine) (*bufpool.Pool, *bufpool.Reservation) {
	t.Helper()
	n := e.Config().Buffers()
	pool, err := bufpool.New(bufpool.Config{Buffers: n})
	if err != nil {
		t.Fatal(err)
	}
	res, err := pool.Reserve(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	return pool, res
}

// TestRunWithoutNATS: the media core runs a whole job (a file and a ladder from one decode) on
// its own, through one reservation, and gives every buffer back.
func TestRunWithoutNATS(t *testing.T) {
	e := engine(t)
	pool, res := reservation(t, e)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 3, Size: "640x360"})
	dir := t.TempDir()
	task := &media.Task{ID: "core", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: "file://" + filepath.Join(dir, "out.mp4"), Preset: "h264-480p"},
		{URL: "file://" + filepath.Join(dir, "hls"), Preset: "hls-abr"},
	}}}
	if err := task.Job.Validate(e.Config().Presets); err != nil {
		t.Fatal(err)
	}
	results, err := e.Run(context.Background(), task)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || results[0].Duration < 2.9 || results[1].Kind != job.ContainerHLS {
		t.Errorf("results %+v", results)
	}
	if _, err := os.Stat(filepath.Join(dir, "hls", "master.m3u8")); err != nil {
		t.Error(err)
	}
	if got := task.Meter.BytesIn.Load(); got == 0 {
		t.Error("no input counted")
	}
	if st := pool.Stats(); st.InUse != 0 || st.Misuse != 0 {
		t.Errorf("ring after the task: %+v", st)
	}
}

// TestRunRollsBack: a task whose second output cannot be committed takes back its first.
func TestRunRollsBack(t *testing.T) {
	e := engine(t)
	_, res := reservation(t, e)
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 2, Size: "320x240"})
	dir := t.TempDir()
	first, last := filepath.Join(dir, "first.mp4"), filepath.Join(dir, "last.mp4")
	task := &media.Task{ID: "rb", Attempt: 1, Buffers: res, Observer: blockOnStart{path: last}, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: "file://" + first, Preset: "h264-480p"},
		{URL: "file://" + last, Preset: "h264-480p"},
	}}}
	_, err := e.Run(context.Background(), task)
	var rb *media.RolledBackError
	if !errors.As(err, &rb) || len(rb.Removed) != 1 || rb.Removed[0] != "file://"+first {
		t.Fatalf("err %v, want the first output rolled back", err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("first output still there: %v", err)
	}
}

// blockOnStart puts a directory where an output goes once ffmpeg runs (after the checks made
// before encoding), so that its commit fails.
type blockOnStart struct{ path string }

func (b blockOnStart) Probed(*ffmpeg.ProbeResult) {}
func (b blockOnStart) Phase(string)               {}
func (b blockOnStart) FirstByte()                 {}
func (b blockOnStart) Started([]string, int)      { _ = os.MkdirAll(filepath.Join(b.path, "x"), 0o755) }
