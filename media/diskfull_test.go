package media_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
	"github.com/transcoder/transcoder/storage"
)

// TestDiskFull: a full disk on each path a task writes fails it with storage.ErrNoSpace
// (transient), naming the disk, and leaves nothing on it: the input spool (an mp4 with its
// index at the end), ffmpeg's own spool file (a plain mp4 output), the output's disk with the
// output streamed to it (MPEG-TS) and copied to it from the spool (mp4).
func TestDiskFull(t *testing.T) {
	t.Parallel()
	big := testenv.MakeClip(t, testenv.Clip{Seconds: 4, Size: "1280x720", Extra: []string{"-qp", "10"}})
	bigEnd := testenv.MakeClip(t, testenv.Clip{Seconds: 4, Size: "1280x720", MoovAtEnd: true, Extra: []string{"-qp", "10"}})
	cases := []struct {
		name, in        string
		container, disk string // the output's container (its file extension); the disk that fills
		spool, out      int64  // disk sizes
	}{
		{"input spool", bigEnd, "ts", "spool", 1 << 20, 64 << 20},
		{"ffmpeg's spool file", big, "mp4", "spool", 256 << 10, 64 << 20},
		{"output streamed", big, "ts", "output", 64 << 20, 256 << 10},
		{"output from the spool", big, "mp4", "output", 64 << 20, 256 << 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			spool, outDir := testenv.SmallDisk(t, c.spool), testenv.SmallDisk(t, c.out)
			e := engineWithSpool(t, spool)
			_, res := reservation(t, e)
			o := job.Output{URL: "file://" + filepath.Join(outDir, "out."+c.container), Preset: "h264-720p"}
			if c.container == "ts" {
				o.Container = "mpegts"
			}
			task := &media.Task{ID: "full", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + c.in, Outputs: []job.Output{o}}}
			if err := task.Job.Validate(e.Config().Presets); err != nil {
				t.Fatal(err)
			}
			_, err := e.Run(context.Background(), task)
			dir := map[string]string{"spool": spool, "output": outDir}[c.disk]
			var df *storage.DiskFullError
			switch {
			case err == nil:
				t.Fatal("the task succeeded on a full disk")
			case !errors.Is(err, storage.ErrNoSpace) || !storage.Transient(err) || !errors.As(err, &df):
				t.Fatalf("%v: not a transient ErrNoSpace", err)
			case df.Disk != c.disk || df.Dir != dir || !strings.Contains(err.Error(), "no space left on device: "+c.disk+" "+dir+" ("):
				t.Errorf("%q does not name the %s disk %s", err, c.disk, dir)
			}
			t.Log(err)
			testenv.Empty(t, spool)
			testenv.Empty(t, outDir)
		})
	}
}
