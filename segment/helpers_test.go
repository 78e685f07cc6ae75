package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// Builders for synthetic ISO BMFF input.

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// mkbox builds a box with a 32-bit size.
func mkbox(typ string, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(be32(uint32(8+len(body))), []byte(typ), body)
}

// mkbox64 builds a box with a 64-bit size.
func mkbox64(typ string, parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(be32(1), []byte(typ), be64(uint64(16+len(body))), body)
}

// mkfull builds a FullBox.
func mkfull(typ string, version byte, flags uint32, parts ...[]byte) []byte {
	return mkbox(typ, append([]byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}, cat(parts...)...))
}

func zeros(n int) []byte { return make([]byte, n) }

// visualEntry builds a visual sample entry of type typ with a configuration box.
func visualEntry(typ string, w, h uint16, config []byte) []byte {
	return mkbox(typ, zeros(6), be16(1), zeros(16), be16(w), be16(h),
		be32(0x00480000), be32(0x00480000), zeros(4), be16(1), zeros(32), be16(0x18), be16(0xffff), config)
}

// audioEntry builds an audio sample entry.
func audioEntry(typ string, channels, rate uint16, config []byte) []byte {
	return mkbox(typ, zeros(6), be16(1), zeros(8), be16(channels), be16(16), zeros(4), be32(uint32(rate)<<16), config)
}

type trackSpec struct {
	handler   string // "vide" or "soun"
	timescale uint32
	id        uint32
	entry     []byte
	trex      trex
	elst      []byte // elst payload box, optional
}

func mkTrak(t trackSpec) []byte {
	var edts []byte
	if t.elst != nil {
		edts = mkbox("edts", t.elst)
	}
	return mkbox("trak",
		mkfull("tkhd", 0, 3, zeros(8), be32(t.id), zeros(72)),
		edts,
		mkbox("mdia",
			mkfull("mdhd", 0, 0, zeros(8), be32(t.timescale), be32(0), be16(0x55c4), be16(0)),
			mkfull("hdlr", 0, 0, be32(0), []byte(t.handler), zeros(12), []byte("h\x00")),
			mkbox("minf",
				mkbox("stbl",
					mkfull("stsd", 0, 0, be32(1), t.entry),
					mkfull("stts", 0, 0, be32(0)),
				),
			),
		),
	)
}

func mkMoov(tracks ...trackSpec) []byte {
	var traks, trexs [][]byte
	for _, t := range tracks {
		traks = append(traks, mkTrak(t))
		trexs = append(trexs, mkfull("trex", 0, 0, be32(t.id), be32(1), be32(t.trex.duration), be32(t.trex.size), be32(t.trex.flags)))
	}
	return mkbox("moov", mkfull("mvhd", 0, 0, zeros(8), be32(1000), zeros(88)), cat(traks...), mkbox("mvex", cat(trexs...)))
}

var (
	testFtyp   = mkbox("ftyp", []byte("iso6"), be32(512), []byte("iso6cmfcmp41"))
	testAvcC   = mkbox("avcC", []byte{1, 0x64, 0x00, 0x1f, 0xff, 0xe0, 0})
	videoTrack = trackSpec{handler: "vide", timescale: 1000, id: 1, entry: visualEntry("avc1", 640, 360, testAvcC)}
)

// flagMode says where a fragment's first-sample flags are.
type flagMode int

const (
	flagsFirst flagMode = iota // trun first_sample_flags
	flagsPer                   // per-sample flags in the trun
	flagsTfhd                  // tfhd default_sample_flags
	flagsTrex                  // trex default (as set in the track spec)
)

type fragSpec struct {
	base    uint64
	durs    []uint32 // per-sample durations
	sync    bool
	mode    flagMode
	cto     int32 // composition offset of the first sample (trun v1)
	noTfdt  bool
	payload int // mdat payload bytes (default 100)
}

const (
	syncFlags    = 0x02000000
	nonSyncFlags = 0x01010000
)

func mkFragment(seq uint32, trackID uint32, f fragSpec) []byte {
	first := uint32(nonSyncFlags)
	if f.sync {
		first = syncFlags
	}
	tfhdFlags := uint32(0x020000)
	var tfhdExtra []byte
	if f.mode == flagsTfhd {
		tfhdFlags |= tfhdDefaultFlags
		tfhdExtra = be32(first)
	}
	trunFlags := uint32(trunDataOffset | trunSampleDuration | trunSampleSize | trunSampleCTO)
	switch f.mode {
	case flagsFirst:
		trunFlags |= trunFirstSampleFlags
	case flagsPer:
		trunFlags |= trunSampleFlags
	}
	payload := f.payload
	if payload == 0 {
		payload = 100
	}
	n := len(f.durs)
	var samples [][]byte
	for i, d := range f.durs {
		size := payload / n
		if i == n-1 {
			size = payload - size*(n-1)
		}
		s := cat(be32(d), be32(uint32(size)))
		if f.mode == flagsPer {
			fl := uint32(nonSyncFlags)
			if i == 0 {
				fl = first
			}
			s = append(s, be32(fl)...)
		}
		cto := int32(0)
		if i == 0 {
			cto = f.cto
		}
		samples = append(samples, append(s, be32(uint32(cto))...))
	}
	build := func(dataOffset uint32) []byte {
		trunBody := cat(be32(uint32(n)), be32(dataOffset))
		if f.mode == flagsFirst {
			trunBody = append(trunBody, be32(first)...)
		}
		var tfdt []byte
		if !f.noTfdt {
			tfdt = mkfull("tfdt", 1, 0, be64(f.base))
		}
		return mkbox("moof",
			mkfull("mfhd", 0, 0, be32(seq)),
			mkbox("traf",
				mkfull("tfhd", 0, tfhdFlags, be32(trackID), tfhdExtra),
				tfdt,
				mkfull("trun", 1, trunFlags, trunBody, cat(samples...)),
			),
		)
	}
	moof := build(0)
	moof = build(uint32(len(moof) + 8))
	data := make([]byte, payload)
	for i := range data {
		data[i] = byte(seq + uint32(i))
	}
	return cat(moof, mkbox("mdat", data))
}

// mkStream builds ftyp+moov+fragments for the track.
func mkStream(t trackSpec, frags ...fragSpec) []byte {
	out := cat(testFtyp, mkMoov(t))
	for i, f := range frags {
		out = append(out, mkFragment(uint32(i+1), t.id, f)...)
	}
	return out
}

// memHandler keeps everything in memory.
type memHandler struct {
	init   []byte
	track  Track
	inits  int
	segs   []Segment
	data   []*bytes.Buffer
	failAt int // Segment(n) fails for n == failAt
}

func (h *memHandler) Init(data []byte, t Track) error {
	h.init, h.track = data, t
	h.inits++
	return nil
}

func (h *memHandler) Segment(n int) (io.Writer, error) {
	if n == h.failAt {
		return nil, fmt.Errorf("no room for segment %d", n)
	}
	if n != len(h.data)+1 {
		return nil, fmt.Errorf("segment %d out of order", n)
	}
	b := new(bytes.Buffer)
	h.data = append(h.data, b)
	return b, nil
}

func (h *memHandler) SegmentDone(s Segment) error {
	h.segs = append(h.segs, s)
	if int64(h.data[s.N-1].Len()) != s.Size {
		return fmt.Errorf("segment %d: %d bytes written, Size %d", s.N, h.data[s.N-1].Len(), s.Size)
	}
	return nil
}

func (h *memHandler) all() []byte {
	out := bytes.Clone(h.init)
	for _, b := range h.data {
		out = append(out, b.Bytes()...)
	}
	return out
}

// chunkings are the ways the tests split a stream into Writes.
var chunkings = []struct {
	name  string
	sizes func(r *rand.Rand) int
}{
	{"whole", func(*rand.Rand) int { return 1 << 30 }},
	{"1byte", func(*rand.Rand) int { return 1 }},
	{"random", func(r *rand.Rand) int {
		switch r.IntN(4) {
		case 0:
			return 1 + r.IntN(16)
		case 1:
			return 1 + r.IntN(4096)
		default:
			return 1 + r.IntN(1<<20)
		}
	}},
}

// feed writes data to s in chunks of the given sizes, copying each into a scratch buffer
// that is then clobbered, so a Segmenter that retained p would be caught.
func feed(t testing.TB, s *Segmenter, data []byte, sizes func(*rand.Rand) int, seed uint64) error {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	scratch := make([]byte, 1<<20)
	for len(data) > 0 {
		n := min(sizes(r), len(data), len(scratch))
		c := copy(scratch, data[:n])
		if _, err := s.Write(scratch[:c]); err != nil {
			return err
		}
		for i := range scratch[:c] {
			scratch[i] = 0xAA
		}
		data = data[n:]
	}
	return nil
}

// segmentAll runs data through a new Segmenter and returns the handler and Close's error
// (or the first Write error).
func segmentAll(t testing.TB, cfg Config, data []byte, sizes func(*rand.Rand) int) (*memHandler, *Segmenter, error) {
	t.Helper()
	h := &memHandler{}
	s, err := New(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := feed(t, s, data, sizes, 42); err != nil {
		return h, s, err
	}
	return h, s, s.Close()
}

// dirHandler writes a rendition's files under dir/name.
type dirHandler struct {
	dir   string
	track Track
	segs  []Segment
	f     *os.File
}

func (h *dirHandler) Init(data []byte, t Track) error {
	h.track = t
	if err := os.MkdirAll(h.dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(h.dir, InitName), data, 0o644)
}

func (h *dirHandler) Segment(n int) (io.Writer, error) {
	f, err := os.Create(filepath.Join(h.dir, SegmentName(n)))
	h.f = f
	return f, err
}

func (h *dirHandler) SegmentDone(s Segment) error {
	h.segs = append(h.segs, s)
	return h.f.Close()
}
