package segment

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// discard is a Handler that drops everything, allocation-free.
type discard struct{ done int }

func (*discard) Init([]byte, Track) error       { return nil }
func (*discard) Segment(int) (io.Writer, error) { return io.Discard, nil }
func (d *discard) SegmentDone(Segment) error    { d.done++; return nil }

// steadyStream returns an init segment and n fragments of 2 s (60 samples at 30 fps, timescale
// 15360), each a little over 1 MiB so that 1 MiB writes split boxes at shifting places, and
// the offsets of the fragments' tfdt values.
func steadyStream(n int) (head, body []byte, tfdts []int) {
	tr := videoTrack
	tr.timescale = 15360
	head = cat(testFtyp, mkMoov(tr))
	durs := make([]uint32, 60)
	for i := range durs {
		durs[i] = 512
	}
	for i := range n {
		f := mkFragment(uint32(i+1), 1, fragSpec{base: uint64(i) * 30720, durs: durs, sync: true, payload: 1<<20 + 4099})
		at := bytes.Index(f, []byte("tfdt")) + 8 // after the type and the FullBox header
		tfdts = append(tfdts, len(body)+at)
		body = append(body, f...)
	}
	return head, body, tfdts
}

// BenchmarkSegmenter streams fragments through a Segmenter in 1 MiB writes, cutting a
// segment every 4 s (two fragments). Steady state allocates nothing.
func BenchmarkSegmenter(b *testing.B) {
	const frags = 16
	head, body, tfdts := steadyStream(frags)
	h := &discard{}
	s, err := New(Config{}, h)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Write(head); err != nil {
		b.Fatal(err)
	}
	const chunk = 1 << 20
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	off := 0
	for range b.N {
		if off == len(body) { // next pass: the same fragments, 32 s later
			off = 0
			for _, at := range tfdts {
				binary.BigEndian.PutUint64(body[at:], binary.BigEndian.Uint64(body[at:])+frags*30720)
			}
		}
		end := min(off+chunk, len(body))
		if _, err := s.Write(body[off:end]); err != nil {
			b.Fatal(err)
		}
		off = end
	}
	b.StopTimer()
	if b.N > 2*frags && h.done == 0 {
		b.Fatal("no segments cut")
	}
}

// TestSteadyStateAllocs: writing a stream, segment cuts included, allocates nothing once the
// init segment is in.
func TestSteadyStateAllocs(t *testing.T) {
	const frags = 8
	head, body, tfdts := steadyStream(frags)
	h := &discard{}
	s, _ := New(Config{}, h)
	if _, err := s.Write(head); err != nil {
		t.Fatal(err)
	}
	pass := func() {
		for off := 0; off < len(body); off += 1 << 20 {
			if _, err := s.Write(body[off:min(off+1<<20, len(body))]); err != nil {
				t.Fatal(err)
			}
		}
		for _, at := range tfdts {
			binary.BigEndian.PutUint64(body[at:], binary.BigEndian.Uint64(body[at:])+frags*30720)
		}
	}
	pass() // warm up: the moof buffer reaches its size
	if allocs := testing.AllocsPerRun(5, pass); allocs != 0 {
		t.Fatalf("%v allocations per %d MiB", allocs, frags)
	}
	if h.done < 5*frags/2 {
		t.Fatalf("only %d segments cut", h.done)
	}
}
