package segment

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// plainMP4 builds a plain mp4: one video track of three 40 ms frames in one chunk, B-frame
// order (presentation 40, 120, 80 ms: the first shown at 40), an edit from 40 ms on, BT.2020 PQ
// tags, and extra boxes spliced into its moov.
func plainMP4(elst []byte, extra ...[]byte) []byte {
	colr := mkbox("colr", []byte("nclx"), be16(9), be16(16), be16(9), []byte{0})
	mdatAt := 0
	build := func() []byte {
		trak := mkbox("trak",
			mkfull("tkhd", 0, 3, zeros(8), be32(1), zeros(72)),
			mkbox("edts", elst),
			mkbox("mdia",
				mkfull("mdhd", 0, 0, zeros(8), be32(1000), be32(0), be16(0x55c4), be16(0)),
				mkfull("hdlr", 0, 0, be32(0), []byte("vide"), zeros(12), []byte("v\x00")),
				mkbox("minf", mkbox("stbl",
					mkfull("stsd", 0, 0, be32(1), visualEntry("avc1", 640, 360, cat(testAvcC, colr))),
					mkfull("stts", 0, 0, be32(1), be32(3), be32(40)),
					mkfull("ctts", 0, 0, be32(3), be32(1), be32(40), be32(1), be32(80), be32(1), be32(0)),
					mkfull("stsz", 0, 0, be32(10), be32(3)),
					mkfull("stsc", 0, 0, be32(1), be32(1), be32(3), be32(1)),
					mkfull("stco", 0, 0, be32(1), be32(uint32(mdatAt))),
				)),
			),
		)
		moov := mkbox("moov", mkfull("mvhd", 0, 0, zeros(8), be32(1000), zeros(88)), trak, cat(extra...))
		return cat(testFtyp, moov, mkbox("mdat", zeros(30)))
	}
	f := build()
	mdatAt = len(f) - 30 // the samples are the mdat's payload
	return build()
}

func TestReadIndex(t *testing.T) {
	edit := mkfull("elst", 0, 0, be32(1), be32(120), be32(40), be32(1<<16))
	f := plainMP4(edit)
	tracks, err := ReadIndex(bytes.NewReader(f), int64(len(f)))
	if err != nil {
		t.Fatal(err)
	}
	want := IndexTrack{Kind: "video", Samples: 3, Start: 0, Duration: 120 * time.Millisecond, Width: 640, Height: 360,
		Primaries: "bt2020", Transfer: "smpte2084", Matrix: "bt2020nc", Colr: true}
	if len(tracks) != 1 || tracks[0] != want {
		t.Fatalf("got %+v, want %+v", tracks, want)
	}

	// Leading empty edit: the track starts late.
	delayed := mkfull("elst", 0, 0, be32(2), be32(500), be32(0xffffffff), be32(1<<16), be32(120), be32(40), be32(1<<16))
	f = plainMP4(delayed)
	if tracks, err = ReadIndex(bytes.NewReader(f), int64(len(f))); err != nil || tracks[0].Start != 500*time.Millisecond {
		t.Fatalf("empty edit: %+v, %v", tracks, err)
	}

	// Cut short: the samples run past the end.
	f = plainMP4(edit)
	if _, err := ReadIndex(bytes.NewReader(f[:len(f)-1]), int64(len(f)-1)); err == nil || errors.Is(err, ErrUnindexed) {
		t.Fatalf("truncated: %v", err)
	}

	// What it leaves to ffprobe.
	for name, f := range map[string][]byte{
		"fragmented":        plainMP4(edit, mkbox("mvex")),
		"two edits":         plainMP4(mkfull("elst", 0, 0, be32(2), be32(40), be32(40), be32(1<<16), be32(40), be32(120), be32(1<<16))),
		"an edit that cuts": plainMP4(mkfull("elst", 0, 0, be32(1), be32(80), be32(80), be32(1<<16))),
		"slow motion edit":  plainMP4(mkfull("elst", 0, 0, be32(1), be32(240), be32(40), be32(1<<15))),
	} {
		if _, err := ReadIndex(bytes.NewReader(f), int64(len(f))); !errors.Is(err, ErrUnindexed) {
			t.Errorf("%s: %v, want ErrUnindexed", name, err)
		}
	}
}
