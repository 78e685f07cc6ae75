package ffmpeg

import (
	"errors"
	"strings"
	"testing"
)

// TestArgsTracks: audio tracks, subtitles (the input's and a sidecar's), a burned text track
// and an overlaid image track, and a WebVTT rendition, as argv; what cannot go somewhere is a
// SpecError naming the field.
func TestArgsTracks(t *testing.T) {
	t.Parallel()
	enc := func() *Video { return &Video{Codec: "libx264", Height: 480} }
	burn := enc()
	burn.Burn = &Burn{Path: "/spool/b.ass"}
	pgs := enc()
	pgs.Burn = &Burn{Image: true, N: 1}
	s := Spec{SubtitleInputs: []Input{{Path: "/spool/s.srt", Format: "srt"}}, Outputs: []Output{
		{Container: "mp4", Video: burn, Audio: &Audio{Codec: "aac", Tracks: []AudioTrack{{N: 1, Default: true}, {N: 0}}},
			Subtitles: []Subtitle{{N: 0, Codec: "mov_text", Language: "eng", Default: true}, {Input: 1, Codec: "mov_text", Language: "fra", Title: "Français"}}},
		{Container: "mp4", Video: pgs},
		{Container: "webvtt", Subtitles: []Subtitle{{N: 1, Codec: "webvtt"}}},
	}}
	args, err := s.Args()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-protocol_whitelist file -format_whitelist srt,webvtt -f srt -i file:/spool/s.srt",
		"-filter_complex [0:V:0][0:s:1]overlay=eof_action=pass:repeatlast=0,setpts=",
		"-map 0:V:0? -map 0:a:1 -map 0:a:0 -c:v",
		"-map 0:s:0 -map 1:s:0 -c:s:0",
		"scale=-2:480,setsar=1,subtitles=filename=/spool/b.ass,format=yuv420p",
		"-disposition:a:0 default -disposition:a:1 0",
		"-c:s:0 mov_text -metadata:s:s:0 language=eng -disposition:s:0 default -c:s:1 mov_text -metadata:s:s:1 language=fra -metadata:s:s:1 title=Français -disposition:s:1 0",
		"-map [b1] -c:v libx264",
		"-vn -an -f webvtt -map 0:s:1 -c:s:0 webvtt -disposition:s:0 0 -map_chapters -1 pipe:5",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("argv lacks %q:\n%s", want, line)
		}
	}
	for _, c := range []struct {
		spec  Spec
		field string
	}{
		{Spec{Outputs: []Output{{Container: "mp4", Video: enc(), Subtitles: []Subtitle{{Codec: "webvtt"}}}}}, "Outputs[0].Subtitles[0].Codec"},
		{Spec{Outputs: []Output{{Container: "mp4", Video: enc(), Subtitles: []Subtitle{{Input: 1, Codec: "mov_text"}}}}}, "Outputs[0].Subtitles[0]"},
		{Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "libx264", Burn: &Burn{Path: "/a b;[x]"}}}}}, "Outputs[0].Video.Burn.Path"},
		{Spec{Outputs: []Output{{Container: "mp4", Video: &Video{Codec: "copy", Burn: &Burn{Image: true}}}}}, "Outputs[0].Video"},
		{Spec{Outputs: []Output{{Container: "webvtt", Video: enc()}}}, "Outputs[0]"},
		{Spec{SubtitleInputs: []Input{{Path: "/s.ass", Format: "ass"}}, Outputs: []Output{{Container: "mp4", Video: enc()}}}, "SubtitleInputs[0]"},
	} {
		_, err := c.spec.Args()
		var se *SpecError
		if !errors.As(err, &se) || se.Field != c.field {
			t.Errorf("%+v: %v, want a SpecError on %s", c.spec.Outputs, err, c.field)
		}
	}
}
