package worker_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// TestDiskFullTransient: a worker whose spool disk (a 4 MiB tmpfs) cannot hold an input that
// must be spooled retries the job as transient, with a reason naming the spool's disk, and
// leaves nothing on it; it says at start that its spool_limit is more than the disk has; and it
// serves the next job, which fits.
func TestDiskFullTransient(t *testing.T) {
	t.Parallel()
	spool := testenv.SmallDisk(t, 4<<20)
	e := setup(t)
	w := e.startWorker("diskfull", func(c *worker.Config) { c.SpoolDir, c.Slots = spool, 1 })
	big := testenv.MakeClip(t, testenv.Clip{Seconds: 4, Size: "1280x720", MoovAtEnd: true, Extra: []string{"-qp", "10"}})
	id := e.submit(big, "h264-480p", filepath.Join(e.dir, "big.mp4"))
	retry := e.events.waitFor(t, waitLong, "retrying", func(ev job.Event) bool { return ev.JobID == id && ev.Type == job.EventRetrying })
	if retry.Error.Class != job.ClassTransient || !strings.Contains(retry.Error.Reason, "no space left on device: spool "+spool+" (4.0 MiB disk, ") {
		t.Errorf("full spool reported as %+v", retry.Error)
	}
	if err := e.client.Cancel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if ev := e.events.terminal(t, id); ev.Type != job.EventCanceled {
		t.Errorf("%s after cancel; want canceled", ev.Type)
	}
	testenv.Empty(t, spool)
	noParts(t, e.dir)

	small := testenv.MakeClip(t, testenv.Clip{Seconds: 1})
	id2 := e.submit(small, "h264-480p", filepath.Join(e.dir, "small.mp4"))
	if ev := e.events.terminal(t, id2); ev.Type != job.EventSucceeded {
		t.Errorf("the job that fits: %s %+v", ev.Type, ev.Error)
	}
	testenv.Empty(t, spool)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	infos, err := e.client.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(infos, func(in worker.WorkerInfo) bool { return in.ID == w.ID() })
	if i < 0 || len(infos[i].Warnings) != 1 || !strings.Contains(infos[i].Warnings[0], "spool_limit 8.0 GiB is larger than the free space of the spool "+spool) {
		t.Errorf("registry entries %+v: want the spool_limit warning", infos)
	}
}
