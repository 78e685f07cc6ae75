package worker_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// submitSplit submits a split job of in (h264-480p) to out.
func (e *env) submitSplit(in, out string, mode string, chunk time.Duration) string {
	e.t.Helper()
	j := &job.Job{Input: "file://" + in, Preset: "h264-480p", Outputs: []job.Output{{URL: "file://" + out}},
		Split: &job.Split{Mode: mode, Chunk: job.Duration(chunk)}}
	id, err := e.client.Submit(context.Background(), j)
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// videoFrames counts the frames of a file's first video stream, decoding it.
func videoFrames(t *testing.T, path string) int {
	t.Helper()
	r, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	spans, err := r.MeasureStreams(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spans {
		if s.Type == "video" {
			return s.Packets
		}
	}
	return 0
}

// chunkLeftovers lists what a split job left in the chunks store and the chunk records.
func (e *env) chunkLeftovers(id string) []string {
	e.t.Helper()
	ctx := context.Background()
	var left []string
	if obs, err := e.js.ObjectStore(ctx, worker.ChunksBucket); err == nil {
		if infos, err := obs.List(ctx); err == nil {
			for _, i := range infos {
				if strings.HasPrefix(i.Name, id+"/") {
					left = append(left, i.Name)
				}
			}
		}
	}
	if kv, err := e.js.KeyValue(ctx, worker.SplitBucket); err == nil {
		if keys, err := kv.ListKeys(ctx); err == nil {
			for k := range keys.Keys() {
				if strings.HasPrefix(k, id+".") {
					left = append(left, k)
				}
			}
		}
	}
	return left
}

// TestSplitJob: a split job on two workers succeeds with every frame of the input, reports its
// chunks while it runs and its account at the end, and leaves no chunk behind.
func TestSplitJob(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("split-a", func(c *worker.Config) { c.Slots = 1 })
	e.startWorker("split-b", func(c *worker.Config) { c.Slots = 1 })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 16, Size: "320x240", Extra: []string{"-g", "50"}})
	out := filepath.Join(e.dir, "split.mp4")
	id := e.submitSplit(in, out, job.SplitOn, 3*time.Second)
	e.events.waitFor(t, waitLong, "progress with chunks", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.ChunksTotal > 0
	})
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded {
		t.Fatalf("final event %s %+v", ev.Type, ev.Error)
	}
	if ev.Split == nil || ev.Split.Chunks < 4 || ev.Split.Encodes != ev.Split.Chunks || len(ev.Split.Workers) == 0 {
		t.Errorf("split account %+v", ev.Split)
	}
	st, err := e.client.Status(context.Background(), id)
	if err != nil || st.Split == nil || st.ChunksDone != st.ChunksTotal || st.ChunksTotal != ev.Split.Chunks {
		t.Errorf("state %+v, %v", st, err)
	}
	if got, want := videoFrames(t, out), videoFrames(t, in); got != want {
		t.Errorf("output has %d frames, the input %d", got, want)
	}
	if left := e.chunkLeftovers(id); len(left) > 0 {
		t.Errorf("chunks left behind: %v", left)
	}
	noParts(t, e.dir)
}

// TestSplitOneSlot: one worker with one slot runs a split job end to end: the coordinator
// encodes the chunks itself, it does not wait for a slot only it could free.
func TestSplitOneSlot(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("split-one", func(c *worker.Config) { c.Slots = 1 })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 8, Size: "320x240", Extra: []string{"-g", "25"}})
	out := filepath.Join(e.dir, "one.mp4")
	id := e.submitSplit(in, out, job.SplitOn, 2*time.Second)
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded || ev.Split == nil || ev.Split.Chunks < 3 {
		t.Fatalf("final event %s %+v %+v", ev.Type, ev.Error, ev.Split)
	}
	if len(ev.Split.Workers) != 1 || ev.Split.Workers[0] != "split-one" {
		t.Errorf("workers %v", ev.Split.Workers)
	}
}

// TestSplitFallback: an input that cannot be cut into MPEG-TS (VP9) runs whole when the split is
// auto, and fails as invalid_input, saying why, when it is on.
func TestSplitFallback(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("split-fallback")
	e.startWorker("split-fallback-2")
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 4, Size: "320x240", Codec: "libvpx-vp9", Container: "webm", NoAudio: true,
		Extra: []string{"-deadline", "realtime", "-cpu-used", "8"}})
	on := e.submitSplit(in, filepath.Join(e.dir, "on.mp4"), job.SplitOn, time.Second)
	if ev := e.events.terminal(t, on); ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidInput || !strings.Contains(ev.Error.Reason, "cannot split") {
		t.Errorf("split on: %s %+v", ev.Type, ev.Error)
	}
	auto := e.submitSplit(in, filepath.Join(e.dir, "auto.mp4"), job.SplitAuto, time.Second)
	if ev := e.events.terminal(t, auto); ev.Type != job.EventSucceeded || ev.Split != nil {
		t.Errorf("split auto: %s %+v %+v", ev.Type, ev.Error, ev.Split)
	}
}

// chunkFaultFFmpeg is an ffmpeg that fails chunk encodes (the argv with a window's select):
// once by dying of SIGKILL (transient: the chunk is retried alone), or always with ffmpeg's
// message for damaged input (invalid_input: the job fails).
func chunkFaultFFmpeg(t *testing.T, mode string) *ffmpeg.Runner {
	t.Helper()
	dir := t.TempDir()
	real, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "failed-once")
	var fault string
	switch mode {
	case "once":
		fault = `if mkdir ` + marker + ` 2>/dev/null; then kill -9 $$; fi` // mkdir: only the first of racing encodes
	case "invalid":
		fault = `echo "[error] pipe:0: Invalid data found when processing input" >&2; exit 1`
	}
	script := "#!/bin/sh\ncase \"$*\" in *\"select='gte(pts\"*) " + fault + ";; esac\nexec " + real + " \"$@\"\n"
	fake := filepath.Join(dir, "ffmpeg")
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	runner, err := ffmpeg.New(ffmpeg.Config{FFmpeg: fake, KillDelay: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return runner
}

// TestSplitChunkFailures: a chunk that fails for a transient reason is retried alone and the
// job succeeds (one encode more than chunks); one that fails as invalid input fails the job
// with that class, and its chunks are cleaned up.
func TestSplitChunkFailures(t *testing.T) {
	t.Parallel()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 8, Size: "320x240", Extra: []string{"-g", "25"}})
	t.Run("transient", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.startWorker("split-transient", func(c *worker.Config) { c.FFmpeg = chunkFaultFFmpeg(t, "once") })
		id := e.submitSplit(in, filepath.Join(e.dir, "t.mp4"), job.SplitOn, 2*time.Second)
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventSucceeded || ev.Split == nil || ev.Split.Encodes != ev.Split.Chunks+1 {
			t.Fatalf("final %s %+v %+v: want success with one chunk encoded twice", ev.Type, ev.Error, ev.Split)
		}
		if ev.Attempt != 1 {
			t.Errorf("the job itself was retried (attempt %d): only the chunk should be", ev.Attempt)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.startWorker("split-invalid", func(c *worker.Config) { c.FFmpeg = chunkFaultFFmpeg(t, "invalid") })
		id := e.submitSplit(in, filepath.Join(e.dir, "i.mp4"), job.SplitOn, 2*time.Second)
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || ev.Error.Class != job.ClassInvalidInput || ev.Attempt != 1 {
			t.Fatalf("final %s attempt %d %+v: want invalid_input at once", ev.Type, ev.Attempt, ev.Error)
		}
		if left := e.chunkLeftovers(id); len(left) > 0 {
			t.Errorf("chunks left behind: %v", left)
		}
		noParts(t, e.dir)
	})
}

// TestSplitCancel: canceling a split job stops its chunks wherever they run, and removes its
// chunk objects and records.
func TestSplitCancel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("split-cancel-a", func(c *worker.Config) { c.Slots = 1 })
	e.startWorker("split-cancel-b", func(c *worker.Config) { c.Slots = 1 })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 60, Size: "640x360", Extra: []string{"-g", "50"}})
	out := filepath.Join(e.dir, "canceled.mp4")
	id := e.submitSplit(in, out, job.SplitOn, 5*time.Second)
	e.events.waitFor(t, waitLong, "progress with chunks", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.ChunksTotal > 0
	})
	if err := e.client.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if ev := e.events.terminal(t, id); ev.Type != job.EventCanceled {
		t.Fatalf("final %s %+v", ev.Type, ev.Error)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("output after cancel: %v", err)
	}
	if left := e.chunkLeftovers(id); len(left) > 0 {
		t.Errorf("chunks left behind: %v", left)
	}
	// Chunk tasks still queued are dropped by whoever takes them: the queue drains.
	deadline := time.Now().Add(waitLong)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := e.js.Stream(context.Background(), worker.JobsStream)
		if err == nil {
			if si, err := info.Info(context.Background()); err == nil && si.State.Msgs == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("chunk tasks of the canceled job still queued")
		}
		<-tick.C
	}
}

// TestSplitResumes: both workers of a split job are killed with SIGKILL once half of its chunks
// are done; two new workers finish it, redoing at most the chunk each killed worker was on, and
// the output has every frame.
func TestSplitResumes(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// One slot each: what each worker can have in flight is one chunk.
	procs := []*workerProc{e.startWorkerProc("resume-a", "TRANSCODER_TEST_SLOTS=1"), e.startWorkerProc("resume-b", "TRANSCODER_TEST_SLOTS=1")}
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 30, Size: "640x360", Extra: []string{"-g", "25"}})
	out := filepath.Join(e.dir, "resumed.mp4")
	id := e.submitSplit(in, out, job.SplitOn, 2*time.Second)
	e.events.waitFor(t, waitLong, "half the chunks done", func(ev job.Event) bool {
		return ev.JobID == id && ev.Type == job.EventProgress && ev.Progress.ChunksTotal > 0 && 2*ev.Progress.ChunksDone >= ev.Progress.ChunksTotal
	})
	for _, p := range procs {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
	e.startWorkerProc("resume-c", "TRANSCODER_TEST_SLOTS=1")
	e.startWorkerProc("resume-d", "TRANSCODER_TEST_SLOTS=1")
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded || ev.Split == nil {
		t.Fatalf("final %s %+v", ev.Type, ev.Error)
	}
	if redone := ev.Split.Encodes - ev.Split.Chunks; redone > 2 || redone < 0 {
		t.Errorf("%d chunks, %d encodes: redid %d, want at most one per killed worker", ev.Split.Chunks, ev.Split.Encodes, redone)
	}
	if got, want := videoFrames(t, out), videoFrames(t, in); got != want {
		t.Errorf("output has %d frames, the input %d", got, want)
	}
}

// TestSplitAuto: with more than one worker alive, an auto job is split when its input is longer
// than split_min_duration (decided on the input's head), and runs whole otherwise.
func TestSplitAuto(t *testing.T) {
	t.Parallel()
	e := setup(t)
	for _, id := range []string{"auto-a", "auto-b"} {
		e.startWorker(id, func(c *worker.Config) { c.SplitMinDuration = 5 * time.Second })
	}
	long := testenv.MakeClip(t, testenv.Clip{Seconds: 8, Size: "320x240", Extra: []string{"-g", "25"}})
	short := testenv.MakeClip(t, testenv.Clip{Seconds: 3, Size: "320x240", Extra: []string{"-g", "25"}})
	split := e.submitSplit(long, filepath.Join(e.dir, "long.mp4"), job.SplitAuto, 2*time.Second)
	whole := e.submitSplit(short, filepath.Join(e.dir, "short.mp4"), "", 2*time.Second)
	// A clip (like loudness and overlays) runs whole however long the input: job.Splittable.
	clipped := &job.Job{Input: "file://" + long, Preset: "h264-480p", Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, "clip.mp4")}},
		Clip: &job.Clip{Start: job.Duration(time.Second)}, Split: &job.Split{Mode: job.SplitAuto, Chunk: job.Duration(2 * time.Second)}}
	clipID, err := e.client.Submit(context.Background(), clipped)
	if err != nil {
		t.Fatal(err)
	}
	if ev := e.events.terminal(t, clipID); ev.Type != job.EventSucceeded || ev.Split != nil || len(ev.Outputs) != 1 || ev.Outputs[0].Frames != 7*25 {
		t.Errorf("8 s input clipped from 1 s, auto: %s %+v %+v %+v; want whole, 175 frames", ev.Type, ev.Error, ev.Split, ev.Outputs)
	}
	if ev := e.events.terminal(t, split); ev.Type != job.EventSucceeded || ev.Split == nil || ev.Split.Chunks < 3 {
		t.Errorf("8 s input, auto: %s %+v %+v; want split", ev.Type, ev.Error, ev.Split)
	}
	if ev := e.events.terminal(t, whole); ev.Type != job.EventSucceeded || ev.Split != nil {
		t.Errorf("3 s input, auto: %s %+v %+v; want whole", ev.Type, ev.Error, ev.Split)
	}
}

// TestSplitCapabilities: a chunk goes to a worker that has its encoder; one without it hands the
// chunk on instead of failing it.
func TestSplitCapabilities(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.startWorker("caps-x264", func(c *worker.Config) { c.Slots = 1 })
	e.startWorker("caps-vp9", func(c *worker.Config) { c.Slots = 1; c.Encoders = []string{"libvpx-vp9", "libopus"} })
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 8, Size: "320x240", Extra: []string{"-g", "25"}})
	id := e.submitSplit(in, filepath.Join(e.dir, "caps.mp4"), job.SplitOn, 2*time.Second)
	ev := e.events.terminal(t, id)
	if ev.Type != job.EventSucceeded || ev.Split == nil {
		t.Fatalf("final %s %+v", ev.Type, ev.Error)
	}
	if len(ev.Split.Workers) != 1 || ev.Split.Workers[0] != "caps-x264" || ev.Split.Encodes != ev.Split.Chunks {
		t.Errorf("account %+v: every chunk should be encoded once, by the worker with x264", ev.Split)
	}
}
