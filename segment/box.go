package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Box types, as big-endian four-character codes.
const (
	boxFtyp = 'f'<<24 | 't'<<16 | 'y'<<8 | 'p'
	boxStyp = 's'<<24 | 't'<<16 | 'y'<<8 | 'p'
	boxMoov = 'm'<<24 | 'o'<<16 | 'o'<<8 | 'v'
	boxMvhd = 'm'<<24 | 'v'<<16 | 'h'<<8 | 'd'
	boxTrak = 't'<<24 | 'r'<<16 | 'a'<<8 | 'k'
	boxTkhd = 't'<<24 | 'k'<<16 | 'h'<<8 | 'd'
	boxEdts = 'e'<<24 | 'd'<<16 | 't'<<8 | 's'
	boxElst = 'e'<<24 | 'l'<<16 | 's'<<8 | 't'
	boxMdia = 'm'<<24 | 'd'<<16 | 'i'<<8 | 'a'
	boxMdhd = 'm'<<24 | 'd'<<16 | 'h'<<8 | 'd'
	boxHdlr = 'h'<<24 | 'd'<<16 | 'l'<<8 | 'r'
	boxMinf = 'm'<<24 | 'i'<<16 | 'n'<<8 | 'f'
	boxStbl = 's'<<24 | 't'<<16 | 'b'<<8 | 'l'
	boxStsd = 's'<<24 | 't'<<16 | 's'<<8 | 'd'
	boxMvex = 'm'<<24 | 'v'<<16 | 'e'<<8 | 'x'
	boxTrex = 't'<<24 | 'r'<<16 | 'e'<<8 | 'x'
	boxMoof = 'm'<<24 | 'o'<<16 | 'o'<<8 | 'f'
	boxTraf = 't'<<24 | 'r'<<16 | 'a'<<8 | 'f'
	boxTfhd = 't'<<24 | 'f'<<16 | 'h'<<8 | 'd'
	boxTfdt = 't'<<24 | 'f'<<16 | 'd'<<8 | 't'
	boxTrun = 't'<<24 | 'r'<<16 | 'u'<<8 | 'n'
	boxMdat = 'm'<<24 | 'd'<<16 | 'a'<<8 | 't'
	boxFree = 'f'<<24 | 'r'<<16 | 'e'<<8 | 'e'
	boxSkip = 's'<<24 | 'k'<<16 | 'i'<<8 | 'p'
	boxWide = 'w'<<24 | 'i'<<16 | 'd'<<8 | 'e'
	boxPdin = 'p'<<24 | 'd'<<16 | 'i'<<8 | 'n'
	boxUUID = 'u'<<24 | 'u'<<16 | 'i'<<8 | 'd'

	// Sample entries and their configuration boxes.
	boxAvc1 = 'a'<<24 | 'v'<<16 | 'c'<<8 | '1'
	boxAvc3 = 'a'<<24 | 'v'<<16 | 'c'<<8 | '3'
	boxAvcC = 'a'<<24 | 'v'<<16 | 'c'<<8 | 'C'
	boxHvc1 = 'h'<<24 | 'v'<<16 | 'c'<<8 | '1'
	boxHev1 = 'h'<<24 | 'e'<<16 | 'v'<<8 | '1'
	boxHvcC = 'h'<<24 | 'v'<<16 | 'c'<<8 | 'C'
	boxVp09 = 'v'<<24 | 'p'<<16 | '0'<<8 | '9'
	boxVpcC = 'v'<<24 | 'p'<<16 | 'c'<<8 | 'C'
	boxAv01 = 'a'<<24 | 'v'<<16 | '0'<<8 | '1'
	boxAv1C = 'a'<<24 | 'v'<<16 | '1'<<8 | 'C'
	boxMp4a = 'm'<<24 | 'p'<<16 | '4'<<8 | 'a'
	boxEsds = 'e'<<24 | 's'<<16 | 'd'<<8 | 's'
	boxOpus = 'O'<<24 | 'p'<<16 | 'u'<<8 | 's'
	boxDOps = 'd'<<24 | 'O'<<16 | 'p'<<8 | 's'

	handlerVide = 'v'<<24 | 'i'<<16 | 'd'<<8 | 'e'
	handlerSoun = 's'<<24 | 'o'<<16 | 'u'<<8 | 'n'
)

// fourCC renders a box type for messages: printable characters as they are, others escaped.
func fourCC(t uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], t)
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("0x%08x", t)
		}
	}
	return string(b[:])
}

// validType reports whether t looks like a box type: four printable ASCII characters, or the
// copyright sign (0xA9) that QuickTime metadata uses as the first one. It is what tells an ISO
// BMFF stream from arbitrary bytes early.
func validType(t uint32) bool {
	for i := range 4 {
		c := byte(t >> (24 - 8*i))
		if (c < 0x20 || c > 0x7e) && (i != 0 || c != 0xa9) {
			return false
		}
	}
	return true
}

var (
	errTruncated = errors.New("truncated box")
)

// ErrFormat is matched (errors.Is) by every error about the stream's bytes: not ISO BMFF, not
// fragmented, several tracks, truncated, malformed or oversized boxes. Errors from the Handler
// and its writers are returned wrapped as they are, and do not match it.
var ErrFormat = errors.New("segment: invalid fragmented MP4 stream")

// BoxError reports malformed input: which box (a path such as "moov/trak/mdia"; empty when the
// stream as a whole is wrong), where, and why. It matches ErrFormat.
type BoxError struct {
	Path   string
	Offset int64 // byte offset of the box in the stream; -1 when unknown
	Err    error
}

func (e *BoxError) Error() string {
	var b strings.Builder
	b.WriteString("segment: ")
	if e.Path != "" {
		b.WriteString("box ")
		b.WriteString(e.Path)
		b.WriteString(" ")
	}
	if e.Offset >= 0 {
		b.WriteString("at offset ")
		b.WriteString(strconv.FormatInt(e.Offset, 10))
		b.WriteString(" ")
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return strings.Replace(b.String(), " : ", ": ", 1)
}

func (e *BoxError) Unwrap() error { return e.Err }

// Is makes every BoxError match ErrFormat.
func (e *BoxError) Is(target error) bool { return target == ErrFormat }

// box is one child box found by nextBox: its type and payload (the bytes after its header).
type box struct {
	typ     uint32
	payload []byte
}

// nextBox splits the first box off b, a sequence of complete child boxes. A size of 0 (to the
// end of the file) is not allowed inside a container; 64-bit sizes are.
func nextBox(b []byte) (bx box, rest []byte, err error) {
	if len(b) < 8 {
		return box{}, nil, errTruncated
	}
	size := uint64(binary.BigEndian.Uint32(b))
	bx.typ = binary.BigEndian.Uint32(b[4:])
	hdr := uint64(8)
	switch size {
	case 0:
		return bx, nil, fmt.Errorf("%s: size 0 (to end of file) inside a container", fourCC(bx.typ))
	case 1:
		if len(b) < 16 {
			return bx, nil, errTruncated
		}
		size = binary.BigEndian.Uint64(b[8:])
		hdr = 16
	}
	if size < hdr {
		return bx, nil, fmt.Errorf("%s: size %d is smaller than its header", fourCC(bx.typ), size)
	}
	if size > uint64(len(b)) {
		return bx, nil, fmt.Errorf("%s: size %d exceeds the %d bytes left in its parent: %w", fourCC(bx.typ), size, len(b), errTruncated)
	}
	return box{typ: bx.typ, payload: b[hdr:size]}, b[size:], nil
}

// eachBox calls fn for every child box in b, stopping at the first error.
func eachBox(b []byte, fn func(box) error) error {
	for len(b) > 0 {
		bx, rest, err := nextBox(b)
		if err != nil {
			return err
		}
		if err := fn(bx); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// findBox returns the first child of type t in b, or false.
func findBox(b []byte, t uint32) (box, bool, error) {
	for len(b) > 0 {
		bx, rest, err := nextBox(b)
		if err != nil {
			return box{}, false, err
		}
		if bx.typ == t {
			return bx, true, nil
		}
		b = rest
	}
	return box{}, false, nil
}

// reader reads big-endian fields from a box payload; the first read past the end sets short,
// and every later read returns zero, so parsers check once at the end.
type reader struct {
	b     []byte
	off   int
	short bool
}

func (r *reader) need(n int) bool {
	if r.short || n < 0 || len(r.b)-r.off < n {
		r.short = true
		return false
	}
	return true
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

func (r *reader) skip(n int) {
	if r.need(n) {
		r.off += n
	}
}

func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) rest() []byte {
	if r.short {
		return nil
	}
	return r.b[r.off:]
}

// fullBox reads a FullBox's version and flags.
func (r *reader) fullBox() (version uint8, flags uint32) {
	v := r.u32()
	return uint8(v >> 24), v & 0xffffff
}

// timedBox reads the header of a FullBox that starts with its creation and modification times
// (mvhd, tkhd, mdhd), skips the times (64-bit in version 1), and returns the version.
func (r *reader) timedBox() uint8 {
	v, _ := r.fullBox()
	if v == 1 {
		r.skip(16)
	} else {
		r.skip(8)
	}
	return v
}
