package ffmpeg

import (
	"context"
	"slices"
	"testing"
)

func TestParseEncoders(t *testing.T) {
	out := []byte(`Encoders:
 V..... = Video
 A..... = Audio
 ------
 V....D libx264              libx264 H.264 / AVC / MPEG-4 AVC (codec h264)
 A....D aac                  AAC (Advanced Audio Coding)
 garbage
`)
	if got := ParseEncoders(out); !slices.Equal(got, []string{"libx264", "aac"}) {
		t.Errorf("ParseEncoders = %v", got)
	}
}

func TestEncoders(t *testing.T) {
	t.Parallel()
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := r.Encoders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"libx264", "aac"} {
		if !slices.Contains(enc, want) {
			t.Errorf("%s missing from %v", want, enc)
		}
	}
}
