package worker_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/job"
)

// TestInvalidEncoderOption: a job asking for an encoder option ffmpeg would refuse (x264
// preset "turbo") fails validation as invalid_job, naming the field, and its input is never
// opened: the input is a real media file under an inotify watch, which would see the worker
// reading it for a probe or for ffmpeg.
func TestInvalidEncoderOption(t *testing.T) {
	t.Parallel()
	h := hostileSetup(t, job.Limits{})
	c := newCanary(t, t.TempDir())
	out := filepath.Join(h.dir, "turbo.mp4")
	raw, err := json.Marshal(map[string]any{
		"id": "turbo", "input": "file://" + c.file,
		"outputs": []map[string]any{{"url": "file://" + out, "container": "mp4", "video": map[string]string{"codec": "h264", "preset": "turbo"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := h.publish(t, "turbo", raw)
	if ev.Type != job.EventFailed || ev.Error == nil || ev.Error.Class != job.ClassInvalidJob {
		t.Fatalf("ended %s %+v; want failed invalid_job", ev.Type, ev.Error)
	}
	if !strings.Contains(ev.Error.Reason, "outputs[0].video.preset") {
		t.Errorf("reason %q does not name outputs[0].video.preset", ev.Error.Reason)
	}
	for _, e := range h.events.of("turbo") {
		if e.Type == job.EventStarted {
			t.Errorf("the job started: %+v", e)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output of a rejected job exists: %v", err)
	}
	c.untouched(t)
}
