package segment

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestNextBox(t *testing.T) {
	payload := []byte("abcd")
	tests := []struct {
		name    string
		in      []byte
		typ     string
		payload []byte
		rest    int
		err     string
	}{
		{"32-bit", cat(mkbox("free", payload), []byte{9}), "free", payload, 1, ""},
		{"64-bit", mkbox64("mdat", payload), "mdat", payload, 0, ""},
		{"empty payload", mkbox("skip"), "skip", []byte{}, 0, ""},
		{"short header", []byte{0, 0, 0, 8, 'f', 'r'}, "", nil, 0, "truncated"},
		{"short 64-bit header", cat(be32(1), []byte("mdat"), []byte{0, 0, 0}), "", nil, 0, "truncated"},
		{"past parent", cat(be32(20), []byte("free"), payload), "", nil, 0, "exceeds the 12 bytes"},
		{"size 0 in container", cat(be32(0), []byte("mdat"), payload), "", nil, 0, "size 0"},
		{"size below header", cat(be32(4), []byte("free")), "", nil, 0, "smaller than its header"},
		{"64-bit size below header", cat(be32(1), []byte("free"), be64(12)), "", nil, 0, "smaller than its header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, rest, err := nextBox(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fourCC(b.typ) != tc.typ || !bytes.Equal(b.payload, tc.payload) || len(rest) != tc.rest {
				t.Fatalf("got %s %q rest %d", fourCC(b.typ), b.payload, len(rest))
			}
		})
	}
}

func TestFourCC(t *testing.T) {
	if got := fourCC(boxMoov); got != "moov" {
		t.Fatal(got)
	}
	if got := fourCC(0x00010203); got != "0x00010203" {
		t.Fatal(got)
	}
	if !validType(0xa9746f6f) || validType(0x0000000a) || validType(0x6d6f6fa9) {
		t.Fatal("validType")
	}
}

// to64 rewrites a box with a 32-bit size as the same box with a 64-bit size.
func to64(b []byte) []byte { return mkbox64(string(b[4:8]), b[8:]) }

// toEnd rewrites a box's size as 0 (to the end of the stream).
func toEnd(b []byte) []byte { return cat(be32(0), b[4:]) }

func twoSecondFrags(n int) []fragSpec {
	var fs []fragSpec
	for i := range n {
		fs = append(fs, fragSpec{base: uint64(i) * 2000, durs: []uint32{500, 500, 500, 500}, sync: true})
	}
	return fs
}

func TestSegmenterFraming(t *testing.T) {
	head := cat(testFtyp, mkMoov(videoTrack))
	f1 := mkFragment(1, 1, fragSpec{base: 0, durs: []uint32{2000, 2000}, sync: true})
	f2 := mkFragment(2, 1, fragSpec{base: 4000, durs: []uint32{2000, 2000}, sync: true, payload: 3000})
	f3 := mkFragment(3, 1, fragSpec{base: 8000, durs: []uint32{1000}, sync: true})
	split := func(frag []byte) (moof, mdat []byte) {
		n := int(be32u(frag))
		return frag[:n], frag[n:]
	}
	m2, d2 := split(f2)
	m3, d3 := split(f3)
	styp := mkbox("styp", []byte("msdh"), be32(0), []byte("msdhmsix"))
	sidx := mkfull("sidx", 1, 0, zeros(40))
	prft := mkfull("prft", 1, 0, zeros(16))
	mfra := mkbox("mfra", mkfull("mfro", 0, 0, be32(16)))
	uuid := mkbox("uuid", zeros(16), []byte("kept"))

	tests := []struct {
		name string
		in   []byte
		want []byte // init + segments, concatenated
		segs int
	}{
		{"plain", cat(head, f1, f2, f3), cat(head, f1, f2, f3), 3},
		{"64-bit mdat and moof", cat(head, f1, to64(m2), to64(d2), f3), cat(head, f1, to64(m2), to64(d2), f3), 3},
		{"size-0 final mdat", cat(head, f1, f2, m3, toEnd(d3)), cat(head, f1, f2, m3, toEnd(d3)), 3},
		{"boxes dropped between fragments", cat(head, styp, sidx, f1, prft, mkbox("free", zeros(5)), f2, mkbox("zzzz", zeros(3)), f3, mfra), cat(head, f1, f2, f3), 3},
		{"box between moof and mdat kept", cat(head, f1, m2, uuid, d2, f3), cat(head, f1, m2, uuid, d2, f3), 3},
		{"free before ftyp, second ftyp dropped", cat(mkbox("free"), head, testFtyp, f1), cat(head, f1), 1},
		{"empty mdat", cat(head, m2, mkbox("mdat")), cat(head, m2, mkbox("mdat")), 1},
	}
	for _, tc := range tests {
		for _, ch := range chunkings {
			t.Run(tc.name+"/"+ch.name, func(t *testing.T) {
				h, s, err := segmentAll(t, Config{}, tc.in, ch.sizes)
				if err != nil {
					t.Fatal(err)
				}
				if h.inits != 1 || len(h.segs) != tc.segs || s.Segments() != tc.segs {
					t.Fatalf("inits %d, segments %d/%d, want 1, %d", h.inits, len(h.segs), s.Segments(), tc.segs)
				}
				if got := h.all(); !bytes.Equal(got, tc.want) {
					t.Fatalf("output differs: %d bytes, want %d", len(got), len(tc.want))
				}
				if !bytes.Equal(h.init, head) {
					t.Fatal("init segment is not ftyp+moov")
				}
			})
		}
	}
}

func be32u(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func TestSegmenterErrors(t *testing.T) {
	head := cat(testFtyp, mkMoov(videoTrack))
	f1 := mkFragment(1, 1, fragSpec{base: 0, durs: []uint32{2000}, sync: true})
	moof1 := f1[:be32u(f1)]
	audio := trackSpec{handler: "soun", timescale: 48000, id: 2, entry: audioEntry("Opus", 2, 48000, nil)}
	twoTracks := cat(testFtyp, mkMoov(videoTrack, audio))
	noMvex := cat(testFtyp, mkbox("moov", mkfull("mvhd", 0, 0, zeros(96)), mkTrak(videoTrack)))
	plainMP4 := cat(testFtyp, mkbox("mdat", zeros(10)), mkbox("moov", mkTrak(videoTrack)))
	baseData := cat(head, mkbox("moof", mkfull("mfhd", 0, 0, be32(1)), mkbox("traf", mkfull("tfhd", 0, 1, be32(1), be64(0)))), mkbox("mdat"))
	wrongID := cat(head, mkFragment(1, 7, fragSpec{durs: []uint32{1}, sync: true}))
	twoTrafs := cat(head, mkbox("moof", mkbox("traf", mkfull("tfhd", 0, 0, be32(1))), mkbox("traf", mkfull("tfhd", 0, 0, be32(1)))), mkbox("mdat"))
	noTraf := cat(head, mkbox("moof", mkfull("mfhd", 0, 0, be32(1))), mkbox("mdat"))
	badTrun := cat(head, mkbox("moof", mkbox("traf", mkfull("tfhd", 0, 0, be32(1)), mkfull("trun", 0, 0x100, be32(1000)))), mkbox("mdat"))
	subtitle := videoTrack
	subtitle.handler = "subt"

	tests := []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, "without an init segment"},
		{"only ftyp", testFtyp, "without an init segment"},
		{"not BMFF", []byte("#EXTM3U\n#EXT-X-VERSION:7\n"), "not an ISO BMFF stream"},
		{"binary garbage", bytes.Repeat([]byte{0xff, 0x00, 0x13, 0x07}, 10), "not an ISO BMFF stream"},
		{"starts with mdat", cat(mkbox("mdat", zeros(8)), head), "not a fragmented MP4 stream: it starts with box mdat"},
		{"webm", []byte{0x1a, 0x45, 0xdf, 0xa3, 0x9f, 0x42, 0x86, 0x81}, "not an ISO BMFF stream"},
		{"plain mp4 with moov at end", plainMP4, "mdat before the moov"},
		{"faststart mp4 without mvex", noMvex, "no mvex: not a fragmented MP4"},
		{"two tracks", twoTracks, "2 tracks"},
		{"subtitle track", cat(testFtyp, mkMoov(subtitle)), `handler "subt"`},
		{"moof before moov", cat(testFtyp, f1), "moof before the moov"},
		{"second moov", cat(head, mkMoov(videoTrack)), "a second moov"},
		{"mdat without moof", cat(head, mkbox("mdat", zeros(4))), "mdat without a moof"},
		{"moof without mdat", cat(head, moof1), "moof without its mdat"},
		{"moof after moof", cat(head, moof1, moof1), "moof after a moof"},
		{"truncated mdat", cat(head, f1[:len(f1)-3]), "box mdat at offset 619: stream ended inside the box (3 bytes missing)"},
		{"truncated moof", cat(head, f1[:20]), "box moof at offset 515: stream ended inside the box (20 of 104 bytes)"},
		{"truncated moov", head[:len(head)-5], "box moov at offset 28: stream ended inside the box"},
		{"truncated header", cat(head, f1, []byte{0, 0, 0}), "inside a box header"},
		{"truncated 64-bit header", cat(head, f1, be32(1), []byte("mdat"), []byte{0}), "inside a box header"},
		{"size 0 moof", cat(head, toEnd(moof1)), "size 0"},
		{"size below header", cat(head, be32(3), []byte("free")), "smaller than its 8-byte header"},
		{"moof over MaxBox", cat(head, mkbox("moof", zeros(5000))), "larger than the 4096-byte limit"},
		{"base data offset", baseData, "explicit base_data_offset"},
		{"track id mismatch", wrongID, "track_ID 7"},
		{"two trafs", twoTrafs, "several traf"},
		{"no traf", noTraf, "no traf"},
		{"trun past its box", badTrun, "do not fit"},
	}
	for _, tc := range tests {
		for _, ch := range chunkings {
			t.Run(tc.name+"/"+ch.name, func(t *testing.T) {
				_, s, err := segmentAll(t, Config{MaxBox: 4096}, tc.in, ch.sizes)
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("%v does not match ErrFormat", err)
				}
				if err2 := s.Close(); err2 == nil {
					t.Fatal("Close after an error returned nil")
				}
				if _, err2 := s.Write([]byte{0}); err2 == nil {
					t.Fatal("Write after an error returned nil")
				}
			})
		}
	}
}

func TestSegmenterHandlerErrors(t *testing.T) {
	in := mkStream(videoTrack, twoSecondFrags(5)...)
	h := &memHandler{failAt: 2}
	s, _ := New(Config{}, h)
	_, err := s.Write(in)
	if err == nil || !strings.Contains(err.Error(), "no room for segment 2") {
		t.Fatalf("err = %v", err)
	}
	if len(h.segs) != 1 {
		t.Fatalf("%d segments done before the failure", len(h.segs))
	}

	s, _ = New(Config{}, &memHandler{})
	if _, err := s.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Write([]byte{0}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}

	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		h    Handler
	}{
		{"Init", &failing{memHandler: &memHandler{}, init: boom}},
		{"Segment", &failing{memHandler: &memHandler{}, segment: boom}},
		{"nil writer", &failing{memHandler: &memHandler{}, nilWriter: true}},
		{"Write", &failing{memHandler: &memHandler{}, write: boom}},
		{"SegmentDone", &failing{memHandler: &memHandler{}, done: boom}},
	} {
		s, _ := New(Config{}, tc.h)
		_, err := s.Write(in)
		if err == nil {
			err = s.Close()
		}
		if err == nil || errors.Is(err, ErrFormat) || (!errors.Is(err, boom) && !strings.Contains(err.Error(), "nil writer")) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}

	for _, cfg := range []Config{{Target: time.Microsecond}, {MaxBox: 100}, {Target: -time.Second}} {
		if _, err := New(cfg, &memHandler{}); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New with a nil handler accepted")
	}
}

func TestCuttingRule(t *testing.T) {
	type frag struct {
		start, dur uint64 // ms
		sync       bool
	}
	tests := []struct {
		name   string
		kind   string
		target time.Duration
		frags  []frag
		starts []uint64 // segment starts, ms
	}{
		{"keyframes every 2s", "video", 4 * time.Second,
			[]frag{{0, 2000, true}, {2000, 2000, true}, {4000, 2000, true}, {6000, 2000, true}, {8000, 2000, true}},
			[]uint64{0, 4000, 8000}},
		{"extra keyframe does not cut", "video", 4 * time.Second,
			[]frag{{0, 2000, true}, {2000, 1000, true}, {3000, 1000, true}, {4000, 2000, true}, {6000, 500, true}, {6500, 1500, true}, {8000, 2000, true}},
			[]uint64{0, 4000, 8000}},
		{"fragment at boundary without keyframe", "video", 4 * time.Second,
			[]frag{{0, 2000, true}, {2000, 2000, true}, {4000, 1000, false}, {5000, 3000, true}, {8000, 1000, true}},
			[]uint64{0, 5000, 8000}},
		{"missing keyframe: next boundary after the late cut", "video", 4 * time.Second,
			[]frag{{0, 2000, true}, {2000, 7000, true}, {9000, 1000, true}, {10000, 2000, true}, {12000, 2000, true}},
			[]uint64{0, 9000, 12000}},
		{"stream starting late aligns to absolute multiples", "video", 4 * time.Second,
			[]frag{{10000, 2000, true}, {12000, 2000, true}, {14000, 2000, true}, {16000, 2000, true}},
			[]uint64{10000, 12000, 16000}},
		{"just before the boundary does not cut", "video", 4 * time.Second,
			[]frag{{0, 3999, true}, {3999, 1, true}, {4000, 1000, true}},
			[]uint64{0, 4000}},
		{"audio: every fragment is sync", "audio", 4 * time.Second,
			[]frag{{0, 1003, false}, {1003, 1003, false}, {2006, 1003, false}, {3009, 1003, false}, {4012, 1003, false}, {5015, 1003, false}},
			[]uint64{0, 4012}},
		{"target 6s", "video", 6 * time.Second,
			[]frag{{0, 2000, true}, {2000, 2000, true}, {4000, 2000, true}, {6000, 2000, true}, {8000, 2000, true}, {10000, 2000, true}, {12000, 1000, true}},
			[]uint64{0, 6000, 12000}},
	}
	for _, tc := range tests {
		for _, mode := range []flagMode{flagsFirst, flagsPer, flagsTfhd, flagsTrex} {
			tr := videoTrack
			if tc.kind == "audio" {
				tr = trackSpec{handler: "soun", timescale: 1000, id: 1, entry: audioEntry("Opus", 2, 48000, nil)}
			}
			var specs []fragSpec
			for i, f := range tc.frags {
				fs := fragSpec{base: f.start, durs: []uint32{uint32(f.dur) / 2, uint32(f.dur) - uint32(f.dur)/2}, sync: f.sync, mode: mode}
				if mode == flagsTrex {
					// trex can only say one thing for all fragments; use per-sample flags for
					// the ones that differ from it.
					tr.trex.flags = syncFlags
					if !f.sync {
						fs.mode = flagsPer
					}
				}
				if i > 0 && mode == flagsFirst && i%2 == 1 {
					fs.noTfdt = true // start time from the previous fragment's end
				}
				specs = append(specs, fs)
			}
			t.Run(tc.name, func(t *testing.T) {
				h, s, err := segmentAll(t, Config{Target: tc.target}, mkStream(tr, specs...), chunkings[2].sizes)
				if err != nil {
					t.Fatal(err)
				}
				var starts []uint64
				var total uint64
				for i, sg := range h.segs {
					starts = append(starts, sg.StartPTS)
					if sg.Start != time.Duration(sg.StartPTS)*time.Millisecond || sg.Duration != time.Duration(sg.DurationTS)*time.Millisecond {
						t.Errorf("segment %d: Start %v Duration %v for %d+%d ms", sg.N, sg.Start, sg.Duration, sg.StartPTS, sg.DurationTS)
					}
					if i+1 < len(h.segs) && sg.StartPTS+sg.DurationTS != h.segs[i+1].StartPTS {
						t.Errorf("segment %d does not end where %d starts", sg.N, sg.N+1)
					}
					total += sg.DurationTS
				}
				if !equalU64(starts, tc.starts) {
					t.Fatalf("segment starts %v, want %v", starts, tc.starts)
				}
				last := tc.frags[len(tc.frags)-1]
				if want := last.start + last.dur - tc.frags[0].start; total != want || s.Duration() != time.Duration(want)*time.Millisecond {
					t.Fatalf("total %d ms, Duration %v, want %d ms", total, s.Duration(), want)
				}
			})
		}
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPresentationTime: with trun v0 (positive composition offsets) and an edit list, as
// ffmpeg writes without the cmaf flag, the cut uses presentation time, so it is the same as
// with the cmaf flag (negative offsets, no edit list).
func TestPresentationTime(t *testing.T) {
	tr := videoTrack
	tr.timescale = 1000
	tr.elst = mkfull("elst", 0, 0, be32(1), be32(0), be32(66), be32(0x00010000))
	var specs []fragSpec
	for i := range 5 {
		// decode time runs 66 ms ahead... behind presentation: the keyframe's cto is 66.
		specs = append(specs, fragSpec{base: uint64(i) * 2000, durs: []uint32{1000, 1000}, sync: true, cto: 66})
	}
	h, _, err := segmentAll(t, Config{}, mkStream(tr, specs...), chunkings[0].sizes)
	if err != nil {
		t.Fatal(err)
	}
	var starts []uint64
	for _, s := range h.segs {
		starts = append(starts, s.StartPTS)
	}
	if !equalU64(starts, []uint64{0, 4000, 8000}) {
		t.Fatalf("starts %v", starts)
	}

	// An initial empty edit of 1 s (movie timescale 1000) delays presentation.
	tr.elst = mkfull("elst", 1, 0, be32(2), be64(1000), be64(^uint64(0)), be32(0x00010000), be64(0), be64(66), be32(0x00010000))
	h, _, err = segmentAll(t, Config{}, mkStream(tr, specs...), chunkings[0].sizes)
	if err != nil {
		t.Fatal(err)
	}
	starts = starts[:0]
	for _, s := range h.segs {
		starts = append(starts, s.StartPTS)
	}
	// presentation 1000, 3000, 5000, 7000, 9000: cuts at the first fragment >= 4000, 8000.
	if !equalU64(starts, []uint64{1000, 5000, 9000}) {
		t.Fatalf("starts with empty edit %v", starts)
	}
}

func TestTrackParse(t *testing.T) {
	esds := mkfull("esds", 0, 0, esdsPayload(0x40, []byte{0x11, 0x90}))
	tests := []struct {
		name string
		tr   trackSpec
		want Track
	}{
		{"avc1", videoTrack, Track{Kind: "video", ID: 1, Timescale: 1000, Codec: "avc1.64001f", Width: 640, Height: 360, Language: "und"}},
		{"mp4a", trackSpec{handler: "soun", timescale: 48000, id: 2, entry: audioEntry("mp4a", 2, 48000, esds)},
			Track{Kind: "audio", ID: 2, Timescale: 48000, Codec: "mp4a.40.2", SampleRate: 48000, Channels: 2, Language: "und"}},
		{"Opus", trackSpec{handler: "soun", timescale: 48000, id: 1, entry: audioEntry("Opus", 6, 48000, mkbox("dOps", zeros(11)))},
			Track{Kind: "audio", ID: 1, Timescale: 48000, Codec: "Opus", SampleRate: 48000, Channels: 6, Language: "und"}},
		{"rate 0 falls back to timescale", trackSpec{handler: "soun", timescale: 44100, id: 1, entry: audioEntry("fLaC", 1, 0, nil)},
			Track{Kind: "audio", ID: 1, Timescale: 44100, Codec: "fLaC", SampleRate: 44100, Channels: 1, Language: "und"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, s, err := segmentAll(t, Config{}, mkStream(tc.tr, fragSpec{durs: []uint32{10}, sync: true}), chunkings[1].sizes)
			if err != nil {
				t.Fatal(err)
			}
			if h.track != tc.want || s.Track() != tc.want {
				t.Fatalf("track %+v, want %+v", h.track, tc.want)
			}
		})
	}

	bad := []struct {
		name  string
		entry []byte
		err   string
	}{
		{"avc1 without avcC", visualEntry("avc1", 1, 1, nil), "no avcC"},
		{"bad avcC", visualEntry("avc1", 1, 1, mkbox("avcC", []byte{2, 1, 2, 3})), "configurationVersion 2"},
		{"short entry", mkbox("avc1", zeros(20)), "too short"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			tr := videoTrack
			tr.entry = tc.entry
			_, _, err := segmentAll(t, Config{}, mkStream(tr), chunkings[0].sizes)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestCutAfter(t *testing.T) {
	tests := []struct {
		pts    int64
		target time.Duration
		scale  uint32
		want   int64
	}{
		{0, 4 * time.Second, 15360, 4 * 15360},
		{-1024, 4 * time.Second, 48000, 4 * 48000},
		{4 * 15360, 4 * time.Second, 15360, 8 * 15360},
		{4*15360 - 1, 4 * time.Second, 15360, 4 * 15360},
		{0, 4 * time.Second, 30000, 120000},
		{0, 1001 * time.Millisecond, 3, 4}, // 3.003 rounded up
		{1 << 62, 4 * time.Second, 90000, 1<<62 + 360000 - (1<<62)%360000},
	}
	for _, tc := range tests {
		if got := cutAfter(tc.pts, tc.target, tc.scale); got != tc.want {
			t.Errorf("cutAfter(%d, %v, %d) = %d, want %d", tc.pts, tc.target, tc.scale, got, tc.want)
		}
	}
	if got := tsToDuration(3, 2); got != 1500*time.Millisecond {
		t.Error(got)
	}
	if got := tsToDuration(1<<63, 1); got != time.Duration(1<<63-1) {
		t.Error(got)
	}
}

// failing is a memHandler whose calls fail on demand.
type failing struct {
	*memHandler
	init, segment, write, done error
	nilWriter                  bool
}

func (f *failing) Init(data []byte, t Track) error {
	if f.init != nil {
		return f.init
	}
	return f.memHandler.Init(data, t)
}

func (f *failing) Segment(n int) (io.Writer, error) {
	if f.segment != nil {
		return nil, f.segment
	}
	if f.nilWriter {
		return nil, nil
	}
	w, err := f.memHandler.Segment(n)
	if f.write != nil {
		return errWriter{f.write}, err
	}
	return w, err
}

func (f *failing) SegmentDone(s Segment) error {
	if f.done != nil {
		return f.done
	}
	return f.memHandler.SegmentDone(s)
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }
