package thumbs_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/thumbs"
)

func ExampleWriteVTT() {
	// A 20 s video, 4 images of 160x90 in a 2 x 2 sheet; each cue spans its image's slot.
	sp := thumbs.Sprite{
		URI:     "sprite.jpg",
		Columns: 2, Rows: 2,
		Width: 160, Height: 90,
		Times: thumbs.Slots(4, 0, 20*time.Second),
		End:   20 * time.Second,
	}
	if err := thumbs.WriteVTT(os.Stdout, sp); err != nil {
		panic(err)
	}
	// Output:
	// WEBVTT
	//
	// 00:00:00.000 --> 00:00:05.000
	// sprite.jpg#xywh=0,0,160,90
	//
	// 00:00:05.000 --> 00:00:10.000
	// sprite.jpg#xywh=160,0,160,90
	//
	// 00:00:10.000 --> 00:00:15.000
	// sprite.jpg#xywh=0,90,160,90
	//
	// 00:00:15.000 --> 00:00:20.000
	// sprite.jpg#xywh=160,90,160,90
}

func TestWriteVTT(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	ok := thumbs.Sprite{URI: "s.jpg", Columns: 3, Width: 64, Height: 36, Times: []time.Duration{0, 1 * ms, 61*time.Second + 999*ms + 999999}, End: 100*time.Hour + 1}
	with := func(f func(*thumbs.Sprite)) thumbs.Sprite { sp := ok; f(&sp); return sp }
	tests := []struct {
		name string
		sp   thumbs.Sprite
		want string // "" = an error
	}{
		{"timestamps: ms rounded down, hours past 99", ok, "WEBVTT\n" +
			"\n00:00:00.000 --> 00:00:00.001\ns.jpg#xywh=0,0,64,36\n" +
			"\n00:00:00.001 --> 00:01:01.999\ns.jpg#xywh=64,0,64,36\n" +
			"\n00:01:01.999 --> 100:00:00.000\ns.jpg#xywh=128,0,64,36\n"},
		{"second row", with(func(sp *thumbs.Sprite) {
			sp.Columns, sp.Rows, sp.URI = 2, 2, "thumbs/sprite 1.jpg?v=2"
			sp.Times, sp.End = []time.Duration{0, 1500 * ms, 3 * time.Second}, 4*time.Second
		}), "WEBVTT\n" +
			"\n00:00:00.000 --> 00:00:01.500\nthumbs/sprite 1.jpg?v=2#xywh=0,0,64,36\n" +
			"\n00:00:01.500 --> 00:00:03.000\nthumbs/sprite 1.jpg?v=2#xywh=64,0,64,36\n" +
			"\n00:00:03.000 --> 00:00:04.000\nthumbs/sprite 1.jpg?v=2#xywh=0,36,64,36\n"},
		{"no URI", with(func(sp *thumbs.Sprite) { sp.URI = "" }), ""},
		{"URI with a line break", with(func(sp *thumbs.Sprite) { sp.URI = "a\n\nb.jpg" }), ""},
		{"URI with a fragment", with(func(sp *thumbs.Sprite) { sp.URI = "a.jpg#x" }), ""},
		{"URI with an arrow", with(func(sp *thumbs.Sprite) { sp.URI = "a-->b.jpg" }), ""},
		{"no columns", with(func(sp *thumbs.Sprite) { sp.Columns = 0 }), ""},
		{"negative rows", with(func(sp *thumbs.Sprite) { sp.Rows = -1 }), ""},
		{"no width", with(func(sp *thumbs.Sprite) { sp.Width = 0 }), ""},
		{"no height", with(func(sp *thumbs.Sprite) { sp.Height = 0 }), ""},
		{"no tiles", with(func(sp *thumbs.Sprite) { sp.Times = nil }), ""},
		{"more tiles than the grid", with(func(sp *thumbs.Sprite) { sp.Columns, sp.Rows = 2, 1 }), ""},
		{"negative start", with(func(sp *thumbs.Sprite) { sp.Times = []time.Duration{-1, 0} }), ""},
		{"times not increasing", with(func(sp *thumbs.Sprite) { sp.Times = []time.Duration{0, 2 * ms, 2 * ms} }), ""},
		{"end before the last start", with(func(sp *thumbs.Sprite) { sp.End = time.Minute }), ""},
		{"end in the last start's millisecond", with(func(sp *thumbs.Sprite) {
			sp.Times, sp.End = []time.Duration{0, time.Second}, time.Second+500*time.Microsecond
		}), ""},
		{"starts in one millisecond", with(func(sp *thumbs.Sprite) { sp.Times = []time.Duration{0, 100 * time.Microsecond} }), ""},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		err := thumbs.WriteVTT(&b, tt.sp)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s: no error, wrote\n%s", tt.name, b.String())
		case tt.want == "" && b.Len() > 0:
			t.Errorf("%s: %v, and wrote %q", tt.name, err, b.String())
		case tt.want != "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && b.String() != tt.want:
			t.Errorf("%s: wrote\n%s\nwant\n%s", tt.name, b.String(), tt.want)
		}
	}
}

type failWriter struct{}

var errWrite = errors.New("disk full")

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

func TestWriteVTTWriteError(t *testing.T) {
	t.Parallel()
	sp := thumbs.Sprite{URI: "s.jpg", Columns: 1, Width: 2, Height: 2, Times: []time.Duration{0}, End: time.Second}
	if err := thumbs.WriteVTT(failWriter{}, sp); !errors.Is(err, errWrite) {
		t.Errorf("err = %v", err)
	}
	var b strings.Builder
	if err := thumbs.WriteVTT(&b, sp); err != nil || !strings.HasPrefix(b.String(), "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n") {
		t.Errorf("%v: %q", err, b.String())
	}
}
