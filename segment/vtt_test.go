package segment

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestParseSubtitles: SRT (CRLF, BOM, numbered) and WebVTT (header, NOTE, settings, short
// clock) read into the same cues; what is not a subtitle file is ErrSubtitles.
func TestParseSubtitles(t *testing.T) {
	srt := "\xef\xbb\xbf1\r\n00:00:00,500 --> 00:00:02,500\r\nHello\r\nworld\r\n\r\n2\r\n01:00:03,000 --> 01:00:05,000\r\nLater\r\n"
	vtt := "WEBVTT - title\n\nNOTE skip me\n\nid1\n00:00.500 --> 00:02.500 align:center\nHello\nworld\n\n01:00:03.000 --> 01:00:05.000\nLater\n"
	want := []Cue{{500 * time.Millisecond, 2500 * time.Millisecond, "Hello\nworld"}, {time.Hour + 3*time.Second, time.Hour + 5*time.Second, "Later"}}
	for name, in := range map[string]string{"srt": srt, "vtt": vtt} {
		got, err := ParseSubtitles([]byte(in))
		if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
	for _, bad := range []string{"", "hello\nworld\n", "1\n00:00:02,000 --> 00:00:01,000\nback\n", "1\n00:00:61,000 --> 00:01:02,000\nx\n", "\xff\xfe", "1\n00:00:01,000 --> 00:00:02,000\nbell\a\n"} {
		if _, err := ParseSubtitles([]byte(bad)); !errors.Is(err, ErrSubtitles) {
			t.Errorf("%q: %v, want ErrSubtitles", bad, err)
		}
	}
	var b bytes.Buffer
	if err := WriteSRT(&b, want); err != nil || !strings.Contains(b.String(), "2\n01:00:03,000 --> 01:00:05,000\nLater\n") {
		t.Errorf("WriteSRT: %q %v", b.String(), err)
	}
}

// TestCutText: ffmpeg's WebVTT stream, written in pieces, is cut on the segment grid over the
// whole presentation: a cue across a boundary is in both segments, segments without cues are
// there (empty), every segment maps its cues to the media clock.
func TestCutText(t *testing.T) {
	stream := "WEBVTT\n\n00:00.521 --> 00:02.521\nHello subtitle\n\n00:03.021 --> 00:05.021\nSecond line\n\n"
	var tt TextTrack
	for i := 0; i < len(stream); i += 7 {
		if _, err := tt.Write([]byte(stream[i:min(i+7, len(stream))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tt.Close(); err != nil || len(tt.Cues()) != 2 {
		t.Fatalf("cues %+v, %v", tt.Cues(), err)
	}
	segs := CutText(tt.Cues(), 4*time.Second, 10*time.Second)
	if len(segs) != 3 || segs[2].Duration != 2*time.Second {
		t.Fatalf("%d segments, want 3 (4+4+2 s): %+v", len(segs), segs)
	}
	for i, want := range [][]string{{"Hello subtitle", "Second line"}, {"Second line"}, nil} {
		s := string(segs[i].Data)
		if !strings.HasPrefix(s, "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n") || strings.Count(s, "-->") != len(want) {
			t.Errorf("segment %d: %q", i+1, s)
		}
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("segment %d lacks %q", i+1, w)
			}
		}
	}
	var big TextTrack
	line := "00:00.000 --> 00:01.000\n" + strings.Repeat("x", 4000) + "\n\n"
	var err error
	for i := 0; i <= MaxTextBytes/4000 && err == nil; i++ {
		_, err = big.Write([]byte(line))
	}
	if !errors.Is(err, ErrSubtitles) {
		t.Errorf("a track past MaxTextBytes: %v", err)
	}
}
