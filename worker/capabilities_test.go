package worker_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// TestCapabilityRouting: a worker without an encoder hands the jobs that need it to a worker
// that has it (without spending their attempts), and a job no live worker can run is reported
// (retrying events that name the encoder, then failed), not left in the queue.
func TestCapabilityRouting(t *testing.T) {
	t.Parallel()
	in := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	noHEVC := func(c *worker.Config) { c.Encoders = []string{"libx264", "aac", "mjpeg"} }

	t.Run("handed to a capable worker", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.startWorker("no-hevc", noHEVC)
		e.startWorker("full")
		var ids []string
		for i := range 4 {
			j := &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, "h"+string(rune('a'+i))+".mp4"), Preset: "hevc-720p", Video: fastHEVC}}}
			id, err := e.client.Submit(context.Background(), j)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			ev := e.events.terminal(t, id)
			if ev.Type != job.EventSucceeded || ev.WorkerID != "full" {
				t.Errorf("job %s ended %s on %s %+v; want succeeded on full", id, ev.Type, ev.WorkerID, ev.Error)
			}
		}
	})

	t.Run("no live worker can", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.startWorker("no-hevc", noHEVC, func(c *worker.Config) { c.MaxDeliver = 2 })
		j := &job.Job{Input: "file://" + in, Outputs: []job.Output{{URL: "file://" + filepath.Join(e.dir, "h.mp4"), Preset: "hevc-720p"}}}
		id, err := e.client.Submit(context.Background(), j)
		if err != nil {
			t.Fatal(err)
		}
		ev := e.events.terminal(t, id)
		if ev.Type != job.EventFailed || !strings.Contains(ev.Error.Reason, "no live worker can encode libx265") {
			t.Fatalf("ended %s %+v; want failed: no live worker can encode libx265", ev.Type, ev.Error)
		}
		if n := e.events.count(id, job.EventRetrying); n != 1 {
			t.Errorf("%d retrying events, want 1 (max deliver 2)", n)
		}
	})
}
