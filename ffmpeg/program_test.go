package ffmpeg

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// A radio programme, then a television one listing its audio before its video, as ffprobe
// -show_programs prints them; a cover art picture too.
const muxJSON = `{"programs":[{"program_id":1,"streams":[{"index":0}]},{"program_id":2,"streams":[{"index":3},{"index":1},{"index":2}]}],
"streams":[{"index":0,"codec_type":"audio"},{"index":1,"codec_type":"video","width":320,"height":240},
{"index":2,"codec_type":"audio","codec_name":"ac3"},{"index":3,"codec_type":"audio","codec_name":"aac"},
{"index":4,"codec_type":"video","disposition":{"attached_pic":1}}],"format":{"format_name":"mpegts"}}`

func TestProbePrograms(t *testing.T) {
	t.Parallel()
	p, err := ParseProbe([]byte(muxJSON))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Programs) != 2 || p.Programs[1].ID != 2 || !slices.Equal(p.Programs[1].Streams, []int{3, 1, 2}) {
		t.Fatalf("programs %+v", p.Programs)
	}
	if got := p.MainProgram(); got != 2 {
		t.Errorf("MainProgram = %d, want 2 (the first with video)", got)
	}
	tv, ok := p.InProgram(2)
	if !ok || len(tv.Streams) != 3 || tv.Streams[0].Index != 3 {
		t.Fatalf("InProgram(2) = %+v, %v; want streams 3, 1, 2", tv, ok)
	}
	if a, _ := tv.Audio(); a.Codec != "aac" {
		t.Errorf("the programme's first audio is %q, want aac (its order, not the file's)", a.Codec)
	}
	if _, ok := p.InProgram(7); ok {
		t.Error("InProgram(7) found a programme")
	}
	if s := p.Streams[4]; !s.AttachedPic {
		t.Error("attached_pic not parsed")
	}
	one := &ProbeResult{Programs: p.Programs[1:], Streams: p.Streams}
	if got := one.MainProgram(); got != 0 {
		t.Errorf("MainProgram of one programme = %d, want 0 (the whole input)", got)
	}
}

// TestArgsProgram: every map of a run names the programme; without one, video is V (not an
// attached picture).
func TestArgsProgram(t *testing.T) {
	t.Parallel()
	enc := &Video{Codec: "libx264", Width: 640, Height: 360}
	s := Spec{Program: 258, SplitVideo: true, Outputs: []Output{
		{Container: "mp4", Video: enc, Audio: &Audio{Codec: "aac", Track: 1}},
		{Container: "mp4", Video: &Video{Codec: "libx264", Width: 320, Height: 180}, Audio: &Audio{Codec: "aac", Tracks: []AudioTrack{{N: 0, Default: true}, {N: 1}}}},
		{Images: &Images{Mode: ImagesPoster}},
	}}
	args, err := s.Args()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"-filter_complex [0:p:258:V:0]", "-map 0:p:258:a:1?", "-map 0:p:258:a:0 -map 0:p:258:a:1", "-map 0:p:258:V:0 -an"} {
		if !strings.Contains(line, want) {
			t.Errorf("argv %q lacks %q", line, want)
		}
	}
	s.Program, s.SplitVideo, s.Outputs = 0, false, s.Outputs[:1]
	if args, _ = s.Args(); !slices.Contains(args, "0:V:0?") || slices.Contains(args, "0:v:0?") {
		t.Errorf("argv %q: want video mapped as 0:V:0?", args)
	}
	for _, bad := range []int{-1, MaxProgram + 1} {
		s.Program = bad
		var se *SpecError
		if _, err := s.Args(); !errors.As(err, &se) || se.Field != "Program" {
			t.Errorf("Program %d: err %v, want a SpecError on Program", bad, err)
		}
	}
}
