package media_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/segment"
)

// readIndex is segment.ReadIndex on a file.
func readIndex(t *testing.T, path string) ([]segment.IndexTrack, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return segment.ReadIndex(f, fi.Size())
}

// agree checks that the index reader says of a file's video and audio tracks what ffprobe
// says of its streams after reading every packet.
func agree(t *testing.T, r *ffmpeg.Runner, path string, tracks []segment.IndexTrack) {
	t.Helper()
	spans, err := r.MeasureStreams(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var av []ffmpeg.StreamSpan
	for _, s := range spans {
		if s.Type == "video" || s.Type == "audio" {
			av = append(av, s)
		}
	}
	var idx []segment.IndexTrack
	for _, tr := range tracks {
		if tr.Kind == "video" || tr.Kind == "audio" {
			idx = append(idx, tr)
		}
	}
	if len(av) != len(idx) {
		t.Fatalf("%s: ffprobe has %d video and audio streams, the index %d", filepath.Base(path), len(av), len(idx))
	}
	near := func(a, b time.Duration) bool { return (a - b).Abs() <= time.Millisecond }
	for i, s := range av {
		x := idx[i]
		if s.Type != x.Kind || s.Packets != x.Samples || !near(s.Start, x.Start) || !near(s.Duration, x.Duration) ||
			s.Transfer != x.Transfer || s.Primaries != x.Primaries || s.Matrix != x.Matrix || s.Width != x.Width || s.Height != x.Height {
			t.Errorf("%s stream %d:\n ffprobe %s %d packets, start %v, %v, %dx%d %s/%s/%s\n index   %s %d samples, start %v, %v, %dx%d %s/%s/%s",
				filepath.Base(path), i, s.Type, s.Packets, s.Start, s.Duration, s.Width, s.Height, s.Primaries, s.Transfer, s.Matrix,
				x.Kind, x.Samples, x.Start, x.Duration, x.Width, x.Height, x.Primaries, x.Transfer, x.Matrix)
		}
	}
}

// TestIndexAgreesWithFFprobe: the verification reads a plain mp4 output from its index
// instead of running ffprobe over every packet. On every real mp4 and mov of the corpus (phones,
// cameras, edit lists, start offsets, priming, HDR tags) the index reader either declines or
// says what ffprobe says; so it does on the worker's own outputs, which it must not decline.
func TestIndexAgreesWithFFprobe(t *testing.T) {
	r, err := ffmpeg.New(ffmpeg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(corpus(t, "README.md")), "*.m[po4][4vb]"))
	read := 0
	for _, f := range files {
		tracks, err := readIndex(t, f)
		if err != nil {
			continue // declined: fragmented, an edit list that cuts, truncated...
		}
		read++
		agree(t, r, f, tracks)
	}
	if read < 20 {
		t.Fatalf("the index reader took %d of %d corpus files; it should take most of them", read, len(files))
	}
	e := engine(t)
	for _, name := range []string{"mp4_sample_sef_slow_motion.mp4", "mp4_edit_list_positive_shift.mp4",
		"mp4_bbb_800x640_768kbps_30fps_avc_2b_firstpts_10_sec.mp4", "mp4_hlg10-color-test.mp4", "ts_bbb_2500ms.ts", "mp4_bt601.mp4"} {
		out, _, err := runFile(t, e, corpus(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		tracks, err := readIndex(t, out)
		if err != nil {
			t.Fatalf("%s: the index reader declined the worker's output: %v", name, err)
		}
		agree(t, r, out, tracks)
	}
}

// TestIndexTruncated: an mp4 cut short after its index is written (a full disk, a copy that
// stopped) lists samples past its end, and the index reader says so.
func TestIndexTruncated(t *testing.T) {
	out, _, err := runFile(t, engine(t), corpus(t, "mp4_sample_shorter_audio.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(out, fi.Size()-1000); err != nil {
		t.Fatal(err)
	}
	_, err = readIndex(t, out)
	if err == nil || errors.Is(err, segment.ErrUnindexed) {
		t.Fatalf("truncated output: %v, want a truncation error", err)
	}
}
