package media

import (
	"runtime"
	"testing"

	"github.com/transcoder/transcoder/ffmpeg"
)

func TestThreads(t *testing.T) {
	runner, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := ffmpeg.New(ffmpeg.Config{Threads: 3})
	if err != nil {
		t.Fatal(err)
	}
	cpus := runtime.GOMAXPROCS(0)
	video := ffmpeg.Output{Video: &ffmpeg.Video{Codec: "libx264"}}
	copied := ffmpeg.Output{Video: &ffmpeg.Video{Codec: "copy"}}
	audio := ffmpeg.Output{Audio: &ffmpeg.Audio{Codec: "aac"}}
	for _, tt := range []struct {
		name   string
		slots  int
		runner *ffmpeg.Runner
		outs   []ffmpeg.Output
		want   int
	}{
		{"one slot: ffmpeg decides", 1, runner, []ffmpeg.Output{video}, 0},
		{"configured threads win", 4, pinned, []ffmpeg.Output{video}, 0},
		{"cores shared by slots", 2, runner, []ffmpeg.Output{video, audio}, max(1, cpus/2)},
		{"and by the job's encoders", 2, runner, []ffmpeg.Output{video, video, copied}, max(1, max(1, cpus/2)/2)},
		{"never below one", 4 * cpus, runner, []ffmpeg.Output{video}, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := &Engine{cfg: Config{Slots: tt.slots, FFmpeg: tt.runner}}
			if got := e.threads(ffmpeg.Spec{Outputs: tt.outs}); got != tt.want {
				t.Errorf("threads = %d, want %d (GOMAXPROCS %d)", got, tt.want, cpus)
			}
		})
	}
}
