package media_test

import (
	"errors"
	"testing"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/media"
)

// cfr is n packets of a 25 fps stream (time base 1/25) in presentation order, a keyframe every
// gop frames.
func cfr(n, gop int) []ffmpeg.VideoPacket {
	pkts := make([]ffmpeg.VideoPacket, n)
	for i := range pkts {
		pkts[i] = ffmpeg.VideoPacket{PTS: int64(i), DTS: int64(i), Key: i%gop == 0}
	}
	return pkts
}

func frames(p *media.SplitPlan) int {
	n := 0
	for _, c := range p.Chunks {
		n += c.Frames
	}
	return n
}

// TestPlanSplit: chunks hold every decodable frame once, cut on keyframes near the target and
// between them otherwise; inputs it cannot cut on one clock are refused.
func TestPlanSplit(t *testing.T) {
	// 20 s with a keyframe every 2 s, chunks of 4 s: five chunks of 100 frames, each its own GOPs.
	p, err := media.PlanSplit(1, 25, cfr(500, 50), 4*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Chunks) != 5 || frames(p) != 500 || p.Frames != 500 {
		t.Fatalf("%d chunks, %d frames: %+v", len(p.Chunks), frames(p), p.Chunks)
	}
	for _, c := range p.Chunks {
		if c.Frames != 100 || c.Decoded != 0 || c.Last-c.First != 1 {
			t.Errorf("chunk %+v: want 100 frames of two whole GOPs", c)
		}
	}

	// One keyframe only: cut between keyframes, each chunk decodes from the start.
	p, err = media.PlanSplit(1, 25, cfr(500, 1000), 4*time.Second, 0)
	if err != nil || frames(p) != 500 || p.Chunks[4].Decoded != 400 {
		t.Fatalf("%v %+v", err, p)
	}

	// A keyframe at the same instant as the frame before it, where a cut would go: the two stay
	// in one chunk (the window is by time).
	pk := cfr(200, 1000)
	pk[101].Key, pk[101].PTS = true, 100
	for i := 102; i < 200; i++ {
		pk[i].PTS = int64(i - 1)
	}
	p, err = media.PlanSplit(1, 25, pk, 4*time.Second, 0)
	if err != nil || frames(p) != 200 || p.Chunks[0].Frames != 102 {
		t.Fatalf("%v %+v", err, p)
	}

	// An open GOP at the start: the leading pictures decoded after the first keyframe, shown
	// before it, reference nothing there and are in no chunk.
	pk = append([]ffmpeg.VideoPacket{{PTS: 2, DTS: -2, Key: true}, {PTS: 0, DTS: -1}, {PTS: 1, DTS: 0}}, cfr(200, 50)[3:]...)
	p, err = media.PlanSplit(1, 25, pk, 4*time.Second, 0)
	if err != nil || frames(p) != 198 {
		t.Fatalf("open GOP start: %v %d frames", err, frames(p))
	}

	// A ladder's grid: chunks of whole segments, cut exactly on the grid.
	p, err = media.PlanSplit(1, 25, cfr(500, 1000), 5*time.Second, 4*time.Second)
	if err != nil || len(p.Chunks) != 5 || p.Chunks[1].Window.KeyEvery != 4*time.Second || p.Chunks[1].Window.KeyIndex != 1 {
		t.Fatalf("grid: %v %+v", err, p)
	}

	for name, pk := range map[string][]ffmpeg.VideoPacket{
		"no presentation times": func() []ffmpeg.VideoPacket { pk := cfr(200, 50); pk[10].NoPTS = true; return pk }(),
		"timestamps go back":    func() []ffmpeg.VideoPacket { pk := cfr(200, 50); pk[120].DTS = 3; return pk }(),
		"no keyframe":           cfr(200, 1000)[1:],
		"a single chunk":        cfr(60, 50),
	} {
		if _, err := media.PlanSplit(1, 25, pk, 4*time.Second, 0); !errors.Is(err, media.ErrUnsplittable) {
			t.Errorf("%s: %v, want ErrUnsplittable", name, err)
		}
	}
}

// TestPlanSplitBalance: on a source with irregular keyframes (those of the benchmark clip) the
// chunks come out of equal length, whatever the keyframes, so that two workers finish together:
// a keyframe is taken only where it is near the target, and the last chunk is no longer than
// the others.
func TestPlanSplitBalance(t *testing.T) {
	keys := map[int]bool{0: true, 250: true, 285: true, 378: true, 553: true, 768: true, 1018: true, 1145: true, 1346: true}
	pkts := make([]ffmpeg.VideoPacket, 1440) // 60 s at 24 fps
	for i := range pkts {
		pkts[i] = ffmpeg.VideoPacket{PTS: int64(i), DTS: int64(i), Key: keys[i]}
	}
	p, err := media.PlanSplit(1, 24, pkts, 10*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Chunks) != 6 || frames(p) != 1440 {
		t.Fatalf("%d chunks, %d frames: %+v", len(p.Chunks), frames(p), p.Chunks)
	}
	for _, c := range p.Chunks {
		if c.Frames < 228 || c.Frames > 252 { // 240 within 5%
			t.Errorf("chunk %d: %d frames, want 240 within 5%%", c.Index, c.Frames)
		}
	}
	if p.Chunks[1].Decoded != 0 || p.Chunks[0].Frames != 250 {
		t.Errorf("chunk 0 %+v: the keyframe 10 frames past the target should end it", p.Chunks[0])
	}

	// 65 s: six chunks of 10.8 s, not five of 10 and one of 15.
	p, err = media.PlanSplit(1, 24, append(pkts, cfrFrom(1440, 120)...), 10*time.Second, 0)
	if err != nil || len(p.Chunks) != 6 {
		t.Fatalf("%v %+v", err, p)
	}
	if last := p.Chunks[5].Frames; last > 270 {
		t.Errorf("last chunk %d frames, want about 260", last)
	}
}

// cfrFrom is n more packets of a 24 fps stream from frame first, no keyframe.
func cfrFrom(first, n int) []ffmpeg.VideoPacket {
	pkts := make([]ffmpeg.VideoPacket, n)
	for i := range pkts {
		pkts[i] = ffmpeg.VideoPacket{PTS: int64(first + i), DTS: int64(first + i)}
	}
	return pkts
}
