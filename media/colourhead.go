package media

import "encoding/binary"

// sdrMP4 reports whether an mp4/mov head shows every video track 8-bit H.264 (profiles up to
// High: 8 bits a component by definition) that no colr box tags HDR or BT.2020: SDR video,
// which no output tone-maps, so its plan needs no probe before ffmpeg starts (the probe runs
// beside ffmpeg as before). This is the common input (phones' SDR mode, cameras, screen
// recordings, what web tools write), and an ffprobe before ffmpeg would cost it 60-120 ms of
// wall time. False whenever it cannot tell: not mp4, a moov larger than the head, any other
// codec (HEVC, AV1 and VP9 carry HDR; phones record HDR in HEVC), 10-bit H.264, or several audio
// tracks (the probe picks the default one).
func sdrMP4(head []byte) bool {
	moov, ok := childBox(head, "moov")
	if !ok {
		return false
	}
	sdr, audio := true, 0
	ok = eachBox(moov, func(typ string, trak []byte) bool {
		switch {
		case typ != "trak":
		case handler(trak) == "vide":
			sdr = sdrSampleEntries(trak)
		case handler(trak) == "soun":
			// Of several tracks the plan takes the default one, which it knows from a probe:
			// the choice must not depend on whether the head was enough for the colour.
			audio++
			sdr = audio < 2
		}
		return sdr
	})
	return ok && sdr
}

// handler is the track's handler type: vide, soun...
func handler(trak []byte) string {
	hdlr, ok := boxPath(trak, "mdia", "hdlr")
	if !ok || len(hdlr) < 12 {
		return ""
	}
	return string(hdlr[8:12])
}

// sdrSampleEntries reports whether every sample entry of the track is avc1/avc3 of an 8-bit
// profile (Baseline, Main, Extended, High) whose colr, if any, states neither BT.2020
// primaries nor a PQ or HLG transfer.
func sdrSampleEntries(trak []byte) bool {
	stsd, ok := boxPath(trak, "mdia", "minf", "stbl", "stsd")
	if !ok || len(stsd) < 8 {
		return false
	}
	n := 0
	sdr := true
	ok = eachBox(stsd[8:], func(typ string, entry []byte) bool {
		n++
		// A visual sample entry's fields take 78 bytes; its boxes (avcC, colr...) follow.
		sdr = (typ == "avc1" || typ == "avc3") && len(entry) > 78 && sdrAVC(entry[78:])
		return sdr
	})
	return ok && sdr && n > 0
}

func sdrAVC(boxes []byte) bool {
	avcC, ok := childBox(boxes, "avcC")
	if !ok || len(avcC) < 2 {
		return false
	}
	switch avcC[1] { // AVCProfileIndication
	case 66, 77, 88, 100:
	default:
		return false
	}
	colr, ok := childBox(boxes, "colr")
	if !ok {
		return true // the SPS's VUI may still say PQ: an 8-bit HDR stream, not made in practice
	}
	if len(colr) < 10 || (string(colr[:4]) != "nclx" && string(colr[:4]) != "nclc") {
		return string(colr[:min(4, len(colr))]) == "prof" // an ICC profile: no transfer code
	}
	prim, trc := binary.BigEndian.Uint16(colr[4:]), binary.BigEndian.Uint16(colr[6:])
	return prim != 9 && trc != 16 && trc != 18 // BT.2020, PQ, HLG
}

// boxPath is the payload of the box at path under b (each the first of its type).
func boxPath(b []byte, path ...string) ([]byte, bool) {
	for _, typ := range path {
		var ok bool
		if b, ok = childBox(b, typ); !ok {
			return nil, false
		}
	}
	return b, true
}

// childBox is the payload of the first box of type typ among the boxes in b.
func childBox(b []byte, typ string) ([]byte, bool) {
	var found []byte
	eachBox(b, func(t string, payload []byte) bool {
		if t == typ {
			found = payload
			return false
		}
		return true
	})
	return found, found != nil
}

// eachBox calls fn with each box in b, in order, until fn returns false. It returns false
// when a box it reaches is malformed or runs past b (a head that ends inside it).
func eachBox(b []byte, fn func(typ string, payload []byte) bool) bool {
	for len(b) > 0 {
		if len(b) < 8 {
			return false
		}
		size, hdr := uint64(binary.BigEndian.Uint32(b)), uint64(8)
		switch size {
		case 0:
			size = uint64(len(b)) // to the end; in a head, maybe past it: only the top level has these
		case 1:
			if len(b) < 16 {
				return false
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return false
		}
		if !fn(string(b[4:8]), b[hdr:size]) {
			return true
		}
		b = b[size:]
	}
	return true
}
