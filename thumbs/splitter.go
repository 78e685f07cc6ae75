package thumbs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrFormat is matched (errors.Is) by every error a Splitter returns for a stream that is not
// a sequence of whole JPEG images.
var ErrFormat = errors.New("thumbs: not a JPEG image stream")

// Handler receives the images a Splitter cuts.
type Handler interface {
	// Image is called at the start of image n (1-based). Its bytes, from SOI to EOI included,
	// are then written to the returned writer as they arrive, in pieces of any size.
	Image(n int) (io.Writer, error)
	// ImageDone is called after the last byte of image n, with its size in bytes.
	ImageDone(n int, size int64) error
}

// JPEG markers the splitter tells apart.
const (
	markSOI = 0xD8
	markEOI = 0xD9
	markSOS = 0xDA
	markTEM = 0x01
	markRST = 0xD0 // ..0xD7
)

type splitState uint8

const (
	sBetween splitState = iota // before an image: want FF of SOI
	sSOI                       // FF seen: want D8
	sMarker                    // in an image, after a segment: want FF
	sCode                      // FF seen: want a marker code (FF fill bytes may come first)
	sLen1                      // segment length, high byte
	sLen2                      // segment length, low byte
	sSegment                   // a segment's payload
	sScan                      // entropy-coded data after SOS
	sScanFF                    // FF in entropy-coded data: stuffing, restart or a marker
)

var soi = [2]byte{0xFF, markSOI}

// Splitter is an io.Writer that cuts a stream of concatenated JPEG images (an MJPEG stream as
// ffmpeg's image2pipe and mjpeg muxers write it) into its images, by following the JPEG marker
// structure: SOI, segments with their lengths, entropy-coded data after SOS (where FF00 is a
// stuffed FF and FFD0..FFD7 are restart markers), EOI. The stream may arrive in chunks of any
// size, one byte included; bytes are forwarded to the Handler as they arrive, so no image is
// held in memory, and a Write allocates nothing.
//
// Anything but an image between images (or before the first) is an error, as is a stream that
// ends inside an image (see Close). A Splitter is not safe for concurrent use; after an error
// every Write returns it.
type Splitter struct {
	// MaxImageSize, when > 0, bounds each image: a bigger one is an error. Set it before the
	// first Write.
	MaxImageSize int64

	h      Handler
	state  splitState
	marker byte // the segment being read
	segLen int  // payload bytes left in the segment
	segPos int  // payload bytes of the segment read so far
	n      int  // images started
	w      io.Writer
	size   int64 // bytes of the current image forwarded
	off    int64 // bytes of the stream consumed, for errors
	frameW int
	frameH int
	width  int // of the last image that had a frame header
	height int
	err    error
}

// NewSplitter returns a Splitter that hands the images to h.
func NewSplitter(h Handler) *Splitter { return &Splitter{h: h} }

// Images returns how many whole images were cut so far.
func (s *Splitter) Images() int {
	if s.state == sBetween || s.state == sSOI {
		return s.n
	}
	return s.n - 1
}

// Size returns the width and height in the frame header (SOFn) of the last whole image.
func (s *Splitter) Size() (width, height int) { return s.width, s.height }

// Write cuts p into images.
func (s *Splitter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.write(p)
	s.off += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Close reports an error if the stream ended inside an image. It does not close anything.
func (s *Splitter) Close() error {
	if s.err != nil {
		return s.err
	}
	if s.state != sBetween {
		s.err = fmt.Errorf("%w: the stream ends inside image %d (%d bytes)", ErrFormat, s.n, s.size)
		return s.err
	}
	return nil
}

func (s *Splitter) formatErr(at int, format string, a ...any) error {
	return fmt.Errorf("%w: at byte %d: %s", ErrFormat, s.off+int64(at), fmt.Sprintf(format, a...))
}

// code handles the byte after an FF in image headers (sCode) or in entropy-coded data
// (sScanFF): fill, stuffing, restart markers, the end of the image (which forwards
// p[*start:i+1] and hands the image over), or a segment's marker. On error it returns how
// much of p was used.
func (s *Splitter) code(p []byte, i int, start *int) (int, error) {
	c := p[i]
	switch {
	case c == 0xFF: // fill byte
	case s.state == sScanFF && c == 0x00: // stuffed FF
		s.state = sScan
	case c >= markRST && c <= markRST+7:
		if s.state == sScanFF {
			s.state = sScan
		} else {
			s.state = sMarker
		}
	case c == markTEM:
		s.state = sMarker
	case c == markEOI:
		if err := s.forward(p[*start : i+1]); err != nil {
			return i, err
		}
		*start = i + 1
		if s.frameW > 0 || s.frameH > 0 {
			s.width, s.height = s.frameW, s.frameH
		}
		s.state, s.w = sBetween, nil
		if err := s.h.ImageDone(s.n, s.size); err != nil {
			return i + 1, err
		}
	case c == markSOI || c == 0x00:
		return i, s.formatErr(i, "marker FF %02X inside image %d", c, s.n)
	default:
		s.marker, s.state = c, sLen1
	}
	return 0, nil
}

// forward writes p, a piece of the current image, to its writer.
func (s *Splitter) forward(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if s.MaxImageSize > 0 && s.size+int64(len(p)) > s.MaxImageSize {
		return fmt.Errorf("%w: image %d is larger than %d bytes", ErrFormat, s.n, s.MaxImageSize)
	}
	m, err := s.w.Write(p)
	s.size += int64(m)
	if err == nil && m < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

func (s *Splitter) write(p []byte) (int, error) {
	start := 0 // p[start:i] belongs to the current image and is not forwarded yet
	i := 0
	for i < len(p) {
		c := p[i]
		switch s.state {
		case sBetween:
			if c != 0xFF {
				return i, s.formatErr(i, "byte %#02x where an image should start", c)
			}
			s.state = sSOI
		case sSOI:
			if c != markSOI {
				return i, s.formatErr(i, "FF %02X where an image should start (want FF D8)", c)
			}
			w, err := s.h.Image(s.n + 1)
			if err != nil {
				return i, err
			}
			s.n++
			s.w, s.size, s.frameW, s.frameH = w, 0, 0, 0
			s.state = sMarker
			if err := s.forward(soi[:]); err != nil {
				return i, err
			}
			start = i + 1
		case sMarker:
			if c != 0xFF {
				return i, s.formatErr(i, "byte %#02x where a marker should be, in image %d", c, s.n)
			}
			s.state = sCode
		case sCode, sScanFF:
			if n, err := s.code(p, i, &start); err != nil {
				return n, err
			}
		case sLen1:
			s.segLen, s.state = int(c)<<8, sLen2
		case sLen2:
			s.segLen |= int(c)
			if s.segLen < 2 {
				return i, s.formatErr(i, "segment FF %02X of length %d in image %d", s.marker, s.segLen, s.n)
			}
			s.segLen -= 2
			s.segPos = 0
			s.state = sSegment
			if s.segLen == 0 {
				s.endSegment()
			}
		case sSegment:
			if isSOF(s.marker) && s.segPos < 5 {
				// Frame header: precision, height (2 bytes), width (2 bytes), ...
				switch s.segPos {
				case 1, 2:
					s.frameH = s.frameH<<8 | int(c)
				case 3, 4:
					s.frameW = s.frameW<<8 | int(c)
				}
				s.segPos++
				s.segLen--
			} else {
				k := min(s.segLen, len(p)-i)
				s.segPos += k
				s.segLen -= k
				i += k - 1
			}
			if s.segLen == 0 {
				s.endSegment()
			}
		case sScan:
			k := bytes.IndexByte(p[i:], 0xFF)
			if k < 0 {
				i = len(p)
				continue
			}
			i += k
			s.state = sScanFF
		}
		i++
	}
	if s.state != sBetween && s.state != sSOI {
		if err := s.forward(p[start:]); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// endSegment moves past a segment's payload: to the entropy-coded data after SOS.
func (s *Splitter) endSegment() {
	if s.marker == markSOS {
		s.state = sScan
	} else {
		s.state = sMarker
	}
}

// isSOF reports whether m is a start-of-frame marker (C0..CF but DHT, JPG and DAC).
func isSOF(m byte) bool { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC }
