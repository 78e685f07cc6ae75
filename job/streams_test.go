package job_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
)

// mux is the probe of a broadcast multiplex: a radio programme (id 1), then n television ones
// (ids 2..n+1), each with a video and two audio tracks.
func mux(n int) *ffmpeg.ProbeResult {
	p := &ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{{Index: 0, Type: "audio", Codec: "mp2"}}, Programs: []ffmpeg.Program{{ID: 1, Streams: []int{0}}}}
	for i := range n {
		prog := ffmpeg.Program{ID: i + 2}
		for _, s := range []ffmpeg.Stream{{Type: "video", Codec: "h264", Width: 320 + 16*i, Height: 240}, {Type: "audio", Codec: "aac"}, {Type: "audio", Codec: "ac3", Default: true}} {
			s.Index = len(p.Streams)
			prog.Streams = append(prog.Streams, s.Index)
			p.Streams = append(p.Streams, s)
		}
		p.Programs = append(p.Programs, prog)
	}
	return p
}

// withSubtitles is a 320x240 video and audio with n subtitle tracks.
func withSubtitles(n int) *ffmpeg.ProbeResult {
	p := &ffmpeg.ProbeResult{Streams: []ffmpeg.Stream{{Type: "video", Codec: "h264", Width: 320, Height: 240}, {Type: "audio", Codec: "aac"}}}
	for range n {
		p.Streams = append(p.Streams, ffmpeg.Stream{Type: "subtitle", Codec: "subrip"})
	}
	return p
}

// TestCheckMediaStreamCaps: the cap on streams counts what is decoded (issue 12, class 7).
func TestCheckMediaStreamCaps(t *testing.T) {
	t.Parallel()
	p := presets(t)
	cover := ffmpeg.Stream{Type: "video", Codec: "mjpeg", Width: 600, Height: 600, AttachedPic: true}
	manyAudio := withSubtitles(0)
	for range 16 {
		manyAudio.Streams = append(manyAudio.Streams, ffmpeg.Stream{Type: "audio", Codec: "aac"})
	}
	cases := []struct {
		name    string
		program int
		probe   *ffmpeg.ProbeResult
		lim     job.Limits
		want    string // "" = accepted
	}{
		{"100 subtitle tracks", 0, withSubtitles(100), job.Limits{}, ""},
		{"998 subtitle tracks", 0, withSubtitles(998), job.Limits{}, ""},
		{"1001 subtitle tracks", 0, withSubtitles(1001), job.Limits{}, "1001 subtitle, data and other streams, more than the limit of 1000"},
		{"side cap configured", 0, withSubtitles(5), job.Limits{MaxSideStreams: 4}, "5 subtitle"},
		{"cover art is not decoded", 0, &ffmpeg.ProbeResult{Streams: append(slices.Repeat([]ffmpeg.Stream{{Type: "audio", Codec: "flac"}}, 16), cover)}, job.Limits{}, ""},
		{"17 audio tracks", 0, manyAudio, job.Limits{}, "18 streams, more than the limit of 16"},
		// 31 video and audio streams in all, 3 in the programme used.
		{"ten-programme multiplex", 0, mux(10), job.Limits{}, ""},
		{"programme named", 5, mux(10), job.Limits{}, ""},
		{"radio programme for a video preset", 1, mux(10), job.Limits{}, ""},
		{"no such programme", 12, mux(10), job.Limits{}, "program 12: the input has no such programme (it has: 1, 2, 3"},
		{"a programme of a file without", 2, withSubtitles(0), job.Limits{}, "program 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			j := &job.Job{Input: "/in/a.ts", Preset: "h264-480p", Program: c.program, Outputs: []job.Output{{URL: "/out/a.mp4"}}}
			err := j.CheckMedia(p, c.probe, c.lim)
			wantMediaErr(t, err, c.want)
		})
	}
}

// TestPlanProgram: the plan maps the streams of one programme: the one the job names, else the
// first with video; its audio track is counted in that programme.
func TestPlanProgram(t *testing.T) {
	t.Parallel()
	p := presets(t)
	for _, c := range []struct {
		program int
		probe   *ffmpeg.ProbeResult
		want    []string // in the argv, in order
	}{
		{0, mux(3), []string{"-map", "0:p:2:V:0?", "-map", "0:p:2:a:1?"}}, // the default-disposition ac3
		{4, mux(3), []string{"-map", "0:p:4:V:0?", "-map", "0:p:4:a:1?"}},
		{4, nil, []string{"-map", "0:p:4:V:0?", "-map", "0:p:4:a:0?"}}, // planned before the probe
		{0, withSubtitles(3), []string{"-map", "0:V:0?", "-map", "0:a:0?"}},
	} {
		j := &job.Job{Input: "/in/a.ts", Preset: "h264-480p", Program: c.program, Outputs: []job.Output{{URL: "/out/a.mp4"}}}
		mp, err := j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, c.probe)
		if err != nil {
			t.Fatal(err)
		}
		args, err := mp.Spec.Args()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(args, c.want[1])
		if i < 1 || !slices.Equal(args[i-1:min(len(args), i-1+len(c.want))], c.want) {
			t.Errorf("program %d: argv %q, want %q in it", c.program, args, c.want)
		}
	}
	j := &job.Job{Input: "/in/a.ts", Preset: "h264-480p", Program: 9, Outputs: []job.Output{{URL: "/out/a.mp4"}}}
	if _, err := j.PlanMedia(p, ffmpeg.Input{}, job.Limits{}, mux(3)); !errors.Is(err, job.ErrUnsupportedMedia) {
		t.Errorf("PlanMedia of a missing programme = %v, want ErrUnsupportedMedia", err)
	}
}

// TestValidateProgram: a programme id is 1..65535 (0: the worker picks).
func TestValidateProgram(t *testing.T) {
	t.Parallel()
	p := presets(t)
	for _, prog := range []int{-1, 65536} {
		j := &job.Job{Input: "/in/a.ts", Preset: "h264-480p", Program: prog, Outputs: []job.Output{{URL: "/out/a.mp4"}}}
		var fe *job.FieldError
		if err := j.Validate(p); !errors.As(err, &fe) || fe.Field != "program" {
			t.Errorf("program %d: Validate = %v, want a FieldError on program", prog, err)
		}
	}
	j, err := job.Decode([]byte(`{"input":"/in/a.ts","preset":"h264-480p","program":257,"outputs":[{"url":"/out/a.mp4"}]}`))
	if err != nil || j.Program != 257 {
		t.Fatalf("Decode = %+v, %v", j, err)
	}
	if err := j.Validate(p); err != nil {
		t.Error(err)
	}
}
