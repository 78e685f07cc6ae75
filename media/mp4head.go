package media

import "encoding/binary"

// Layout of an ISO BMFF (mp4/mov) head, from its top-level boxes.
type mp4Layout int

const (
	notMP4      mp4Layout = iota // not ISO BMFF, or undecided: stream it
	mp4MoovHead                  // index before the media: streams from a pipe
	mp4MoovTail                  // media before the index: must be spooled to a file
)

// scanMP4 walks the top-level boxes in the head. ffmpeg cannot demux an mp4 whose moov follows
// mdat from a pipe, so such inputs are spooled; everything else streams.
func scanMP4(head [][]byte) mp4Layout {
	var hdr [16]byte
	total := int64(0)
	for _, c := range head {
		total += int64(len(c))
	}
	at := func(off int64, n int) bool {
		if off+int64(n) > total {
			return false
		}
		copyAt(hdr[:n], head, off)
		return true
	}
	off := int64(0)
	for i := 0; ; i++ {
		if !at(off, 8) {
			return notMP4
		}
		size := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if i == 0 && typ != "ftyp" && typ != "moov" && typ != "mdat" && typ != "free" && typ != "wide" && typ != "skip" {
			return notMP4
		}
		switch typ {
		case "moov":
			return mp4MoovHead
		case "mdat":
			return mp4MoovTail
		}
		switch size {
		case 0: // box runs to the end of the file
			return notMP4
		case 1:
			if !at(off, 16) {
				return notMP4
			}
			size = int64(binary.BigEndian.Uint64(hdr[8:16]))
		}
		if size < 8 {
			return notMP4
		}
		off += size
	}
}

func copyAt(dst []byte, head [][]byte, off int64) {
	for _, c := range head {
		if off >= int64(len(c)) {
			off -= int64(len(c))
			continue
		}
		n := copy(dst, c[off:])
		dst = dst[n:]
		off = 0
		if len(dst) == 0 {
			return
		}
	}
}
