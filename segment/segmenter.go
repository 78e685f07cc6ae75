package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"time"
)

// Defaults for Config.
const (
	DefaultTarget = 4 * time.Second
	DefaultMaxBox = 4 << 20
)

// Handler receives what a Segmenter cuts. Its calls come from Write and Close, in order:
// Init once, then for each media segment Segment(n), the segment's bytes written to the
// returned writer (in as many Write calls as it takes), and SegmentDone.
type Handler interface {
	// Init receives the init segment (ftyp and moov, as they were in the stream) before any
	// media segment. data is the handler's to keep.
	Init(data []byte, t Track) error
	// Segment announces media segment n (1-based); the returned writer receives its bytes.
	// As io.Writer requires, the writer must not retain the slices it is given: the
	// Segmenter reuses them (and they may be the caller's Write argument).
	Segment(n int) (io.Writer, error)
	// SegmentDone says that segment n is complete: no more bytes follow for it.
	SegmentDone(s Segment) error
}

// Segment describes one complete media segment.
type Segment struct {
	N          int           // 1-based
	Start      time.Duration // presentation time of its first sample (StartPTS in time units)
	Duration   time.Duration // DurationTS in time units
	Size       int64         // bytes written for it
	StartPTS   uint64        // presentation time of its first sample, track timescale (0 if negative)
	DurationTS uint64        // sum of its sample durations, track timescale
	Samples    int           // samples (frames) in it
}

// Config tunes a Segmenter.
type Config struct {
	// Target is the segment duration that cuts aim at (DefaultTarget when zero). A segment
	// lasts at least about this long, except the last; it is longer when the first sync
	// fragment after a boundary comes late.
	Target time.Duration
	// MaxBox caps a box that must be held in memory: ftyp, moov, moof (DefaultMaxBox when
	// zero). A larger one is an error. mdat payloads are never held.
	MaxBox int
}

// Segmenter cuts one fragmented-MP4 stream (one track) into an init segment and media
// segments; see the package documentation for the cutting rule. It is an io.WriteCloser, not
// safe for concurrent use. After an error every later call returns that error.
type Segmenter struct {
	cfg Config
	h   Handler

	// box framing
	state    int
	hdr      [16]byte
	hdrN     int
	typ      uint32
	hdrLen   int
	boxPos   int64  // stream offset of the current box
	pos      int64  // stream offset of the next byte
	left     uint64 // bytes of the current box still to come (stStream, stSkip)
	toEnd    bool   // the current mdat runs to the end of the stream (size 0)
	buf      []byte // the buffered box (stBuffer), header included
	bufN     int
	boxes    int
	inFrag   bool // a moof was written; its mdat has not started yet
	err      error
	closed   bool
	ftyp     []byte
	haveInit bool

	ti        trackInfo
	nextDTS   uint64
	totalTS   uint64
	segOpen   bool
	seg       Segment
	w         io.Writer
	done      int
	nextCutTS int64 // presentation time (timescale) at or after which the next cut may come
}

const (
	stHeader = iota
	stBuffer
	stStream
	stSkip
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("segment: segmenter closed")

// New returns a Segmenter that hands what it cuts to h.
func New(cfg Config, h Handler) (*Segmenter, error) {
	if h == nil {
		return nil, errors.New("segment: nil Handler")
	}
	if cfg.Target == 0 {
		cfg.Target = DefaultTarget
	}
	if cfg.Target < time.Millisecond {
		return nil, fmt.Errorf("segment: Target %v: want at least 1ms", cfg.Target)
	}
	if cfg.MaxBox == 0 {
		cfg.MaxBox = DefaultMaxBox
	}
	if cfg.MaxBox < 4096 {
		return nil, fmt.Errorf("segment: MaxBox %d: want at least 4096", cfg.MaxBox)
	}
	return &Segmenter{cfg: cfg, h: h, buf: make([]byte, 0, 64<<10)}, nil
}

// Track returns the stream's track; the zero Track until the moov has been read.
func (s *Segmenter) Track() Track { return s.ti.Track }

// Segments returns the number of complete segments (SegmentDone calls so far).
func (s *Segmenter) Segments() int { return s.done }

// Duration returns the duration of the media read so far: the sum of every fragment's sample
// durations.
func (s *Segmenter) Duration() time.Duration { return tsToDuration(s.totalTS, s.ti.Timescale) }

// Write consumes the next bytes of the stream. Split points are arbitrary; p is not retained.
func (s *Segmenter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, ErrClosed
	}
	total := len(p)
	for len(p) > 0 {
		var err error
		switch s.state {
		case stHeader:
			need := 8
			if s.hdrN >= 8 && binary.BigEndian.Uint32(s.hdr[:]) == 1 {
				need = 16
			}
			c := copy(s.hdr[s.hdrN:need], p)
			s.hdrN += c
			s.pos += int64(c)
			p = p[c:]
			if s.hdrN == 8 && binary.BigEndian.Uint32(s.hdr[:]) == 1 {
				continue // a 64-bit size follows
			}
			if s.hdrN == need {
				err = s.startBox()
			}
		case stBuffer:
			c := copy(s.buf[s.bufN:], p)
			s.bufN += c
			s.pos += int64(c)
			p = p[c:]
			if s.bufN == len(s.buf) {
				err = s.endBox()
			}
		case stStream, stSkip:
			c := len(p)
			if !s.toEnd && uint64(c) > s.left {
				c = int(s.left)
			}
			if s.state == stStream {
				err = s.write(p[:c])
			}
			s.pos += int64(c)
			p = p[c:]
			if !s.toEnd {
				s.left -= uint64(c)
				if s.left == 0 {
					s.state, s.hdrN = stHeader, 0
				}
			}
		}
		if err != nil {
			s.err = err
			return total - len(p), err
		}
	}
	return total, nil
}

// Close ends the stream: it completes the last segment. It fails when the stream ended inside
// a box, when a moof had no mdat, or when there was no init segment. Close does not close the
// Handler's writers; SegmentDone is where a handler finishes a segment.
func (s *Segmenter) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err != nil {
		return s.err
	}
	switch {
	case s.state == stHeader && s.hdrN > 0:
		s.err = &BoxError{Offset: s.pos - int64(s.hdrN), Err: fmt.Errorf("stream ended inside a box header (%d bytes of it)", s.hdrN)}
	case s.state == stBuffer:
		s.err = s.fail("stream ended inside the box (%d of %d bytes)", s.bufN, len(s.buf))
	case (s.state == stStream || s.state == stSkip) && !s.toEnd:
		s.err = s.fail("stream ended inside the box (%d bytes missing)", s.left)
	case !s.haveInit:
		s.err = &BoxError{Offset: -1, Err: errors.New("stream ended without an init segment (no moov)")}
	case s.inFrag:
		s.err = &BoxError{Path: "moof", Offset: -1, Err: errors.New("stream ended after a moof without its mdat")}
	case s.segOpen:
		s.err = s.finishSegment()
	}
	return s.err
}

func (s *Segmenter) write(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		return fmt.Errorf("segment: writing segment %d: %w", s.seg.N, err)
	}
	s.seg.Size += int64(len(p))
	return nil
}

func (s *Segmenter) fail(format string, args ...any) error {
	return &BoxError{Path: fourCC(s.typ), Offset: s.boxPos, Err: fmt.Errorf(format, args...)}
}

// startBox acts on a complete box header.
func (s *Segmenter) startBox() error {
	s.boxPos = s.pos - int64(s.hdrN)
	size := uint64(binary.BigEndian.Uint32(s.hdr[:]))
	s.typ = binary.BigEndian.Uint32(s.hdr[4:])
	s.hdrLen = 8
	if size == 1 {
		size = binary.BigEndian.Uint64(s.hdr[8:])
		s.hdrLen = 16
	}
	if !validType(s.typ) {
		return &BoxError{Offset: s.boxPos, Err: fmt.Errorf("not an ISO BMFF stream: no box header here (type bytes %s)", fourCC(s.typ))}
	}
	if s.boxes == 0 {
		switch s.typ {
		case boxFtyp, boxStyp, boxMoov, boxFree, boxSkip, boxWide, boxPdin, boxUUID:
		default:
			return &BoxError{Offset: 0, Err: fmt.Errorf("not a fragmented MP4 stream: it starts with box %s", fourCC(s.typ))}
		}
	}
	s.boxes++
	s.toEnd = false
	switch {
	case size == 0 && s.typ == boxMdat:
		s.toEnd = true
	case size == 0:
		return s.fail("size 0 (to the end of the stream) is allowed only for a final mdat")
	case size < uint64(s.hdrLen):
		return s.fail("size %d is smaller than its %d-byte header", size, s.hdrLen)
	}
	s.left = size - uint64(s.hdrLen)

	switch s.typ {
	case boxFtyp:
		if s.haveInit {
			return s.skip()
		}
		return s.buffer(size)
	case boxMoov:
		if s.haveInit {
			return s.fail("a second moov: the stream must carry one init segment")
		}
		return s.buffer(size)
	case boxMoof:
		if !s.haveInit {
			return s.fail("moof before the moov")
		}
		if s.inFrag {
			return s.fail("moof after a moof without mdat")
		}
		return s.buffer(size)
	case boxMdat:
		if !s.haveInit {
			return s.fail("mdat before the moov: not a fragmented MP4 (an MP4 with its index at the end cannot be segmented as it streams)")
		}
		if !s.inFrag {
			return s.fail("mdat without a moof before it")
		}
		s.inFrag = false
		return s.stream()
	default:
		// A box between a moof and its mdat stays with them (data offsets may count it);
		// any other top-level box (styp, sidx, prft, emsg, free, mfra, ...) is dropped.
		if s.inFrag {
			return s.stream()
		}
		return s.skip()
	}
}

func (s *Segmenter) buffer(size uint64) error {
	if size > uint64(s.cfg.MaxBox) {
		return s.fail("%d bytes: larger than the %d-byte limit on boxes held in memory", size, s.cfg.MaxBox)
	}
	if uint64(cap(s.buf)) < size {
		s.buf = make([]byte, size, max(size, min(2*uint64(cap(s.buf)), uint64(s.cfg.MaxBox))))
	}
	s.buf = s.buf[:size]
	s.bufN = copy(s.buf, s.hdr[:s.hdrLen])
	s.state = stBuffer
	if s.bufN == len(s.buf) {
		return s.endBox()
	}
	return nil
}

func (s *Segmenter) stream() error {
	s.state = stStream
	if err := s.write(s.hdr[:s.hdrLen]); err != nil {
		return err
	}
	if s.left == 0 && !s.toEnd {
		s.state, s.hdrN = stHeader, 0
	}
	return nil
}

func (s *Segmenter) skip() error {
	s.state = stSkip
	if s.left == 0 {
		s.state, s.hdrN = stHeader, 0
	}
	return nil
}

// endBox acts on a complete buffered box.
func (s *Segmenter) endBox() error {
	s.state, s.hdrN = stHeader, 0
	payload := s.buf[s.hdrLen:]
	switch s.typ {
	case boxFtyp:
		s.ftyp = bytes.Clone(s.buf)
	case boxMoov:
		ti, err := parseMoov(payload)
		if err != nil {
			var be *BoxError
			if errors.As(err, &be) && be.Offset < 0 {
				be.Offset = s.boxPos
			}
			return err
		}
		s.ti = ti
		init := make([]byte, 0, len(s.ftyp)+len(s.buf))
		init = append(append(init, s.ftyp...), s.buf...)
		s.haveInit = true
		if err := s.h.Init(init, ti.Track); err != nil {
			return fmt.Errorf("segment: init segment: %w", err)
		}
	case boxMoof:
		f, err := parseMoof(payload, &s.ti)
		if err != nil {
			return &BoxError{Path: "moof", Offset: s.boxPos, Err: err}
		}
		if err := s.fragment(&f); err != nil {
			return err
		}
		s.inFrag = true
		return s.write(s.buf)
	}
	return nil
}

// fragment applies the cutting rule to the next fragment.
func (s *Segmenter) fragment(f *fragment) error {
	if !f.hasTfdt {
		f.baseTime = s.nextDTS
	}
	s.nextDTS = f.baseTime + f.duration
	s.totalTS += f.duration
	pts := int64(f.baseTime) + f.firstCTO + s.ti.ptsOffset
	if !s.segOpen || (f.firstSync && pts >= s.nextCutTS) {
		if s.segOpen {
			if err := s.finishSegment(); err != nil {
				return err
			}
		}
		if err := s.startSegment(pts); err != nil {
			return err
		}
	}
	s.seg.DurationTS += f.duration
	s.seg.Samples += f.samples
	return nil
}

func (s *Segmenter) startSegment(pts int64) error {
	n := s.done + 1
	w, err := s.h.Segment(n)
	if err != nil {
		return fmt.Errorf("segment: starting segment %d: %w", n, err)
	}
	if w == nil {
		return fmt.Errorf("segment: Handler.Segment(%d) returned a nil writer", n)
	}
	start := uint64(max(pts, 0))
	s.w, s.segOpen = w, true
	s.seg = Segment{N: n, StartPTS: start, Start: tsToDuration(start, s.ti.Timescale)}
	s.nextCutTS = cutAfter(pts, s.cfg.Target, s.ti.Timescale)
	return nil
}

func (s *Segmenter) finishSegment() error {
	s.seg.Duration = tsToDuration(s.seg.DurationTS, s.ti.Timescale)
	s.segOpen, s.w = false, nil
	s.done++
	if err := s.h.SegmentDone(s.seg); err != nil {
		return fmt.Errorf("segment: finishing segment %d: %w", s.seg.N, err)
	}
	return nil
}

// cutAfter returns, in timescale units, the first boundary k*target (k >= 1) strictly after
// pts: ceil(k * target * timescale / 1e9) for k = floor(pts / target) + 1.
func cutAfter(pts int64, target time.Duration, timescale uint32) int64 {
	k := uint64(1)
	hi, den := bits.Mul64(uint64(target), uint64(timescale))
	if hi != 0 {
		return math.MaxInt64
	}
	var lo uint64
	if pts > 0 {
		hi, lo = bits.Mul64(uint64(pts), 1e9)
		if hi >= den {
			return math.MaxInt64
		}
		q, _ := bits.Div64(hi, lo, den)
		k = q + 1
	}
	hi, lo = bits.Mul64(k, den)
	if hi >= 1e9 {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, 1e9)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// tsToDuration converts timescale units to a Duration, saturating.
func tsToDuration(ts uint64, timescale uint32) time.Duration {
	if timescale == 0 {
		return 0
	}
	hi, lo := bits.Mul64(ts, 1e9)
	if hi >= uint64(timescale) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(timescale))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(q)
}
