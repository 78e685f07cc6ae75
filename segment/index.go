package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// IndexTrack is one track of a plain (not fragmented) MP4 as its index, the moov box, says it
// plays, in the terms ffprobe reports a stream in: its start and duration after the edit list
// (an AAC track's priming, trimmed by its edit, is not part of either), and how many samples it
// has (packets: a frame of video, an audio frame).
type IndexTrack struct {
	Kind            string // "video", "audio", or another handler type ("text", "subt", "tmcd"...)
	Samples         int
	Start, Duration time.Duration
	Width, Height   int // video: the sample entry's
	// Colour tags of a video track's colr box, named as ffprobe names them; "" when the box
	// says unspecified, or there is none (Colr false).
	Primaries, Transfer, Matrix string
	Colr                        bool
}

// ErrUnindexed is matched by ReadIndex's errors for files it does not measure: fragmented
// ones, edit lists of more than one segment or at another rate, tables it does not read. They
// are not damaged; measure them by reading their packets.
var ErrUnindexed = errors.New("segment: not a plain mp4 whose index this package reads")

// maxMoov bounds the index ReadIndex loads: 12 hours of 60 fps video and 48 kHz audio need
// about 20 MB of tables.
const maxMoov = 64 << 20

// ReadIndex reads the tracks of a plain MP4 of size bytes from its moov box alone, in
// microseconds where reading every packet takes an ffprobe. It also checks that every sample
// the index lists lies inside the file: a file cut short after its index was written fails.
func ReadIndex(r io.ReaderAt, size int64) ([]IndexTrack, error) {
	moov, err := loadMoov(r, size)
	if err != nil {
		return nil, err
	}
	var movieTS uint32
	var tracks []IndexTrack
	err = eachBox(moov, func(b box) error {
		switch b.typ {
		case boxMvhd:
			rd := reader{b: b.payload}
			rd.timedBox()
			movieTS = rd.u32()
		case boxMvex:
			return fmt.Errorf("%w: fragmented (mvex)", ErrUnindexed)
		case boxTrak:
			if movieTS == 0 {
				return errors.New("trak before mvhd, or movie timescale 0")
			}
			t, err := indexTrak(b.payload, movieTS, size)
			if err != nil {
				return err
			}
			tracks = append(tracks, t)
		}
		return nil
	})
	if err != nil {
		return nil, &BoxError{Path: "moov", Offset: -1, Err: err}
	}
	return tracks, nil
}

// loadMoov finds the top-level moov box and reads it whole.
func loadMoov(r io.ReaderAt, size int64) ([]byte, error) {
	var hdr [16]byte
	for off := int64(0); off+8 <= size; {
		if _, err := r.ReadAt(hdr[:8], off); err != nil {
			return nil, fmt.Errorf("segment: read box at %d: %w", off, err)
		}
		n, typ, head := int64(binary.BigEndian.Uint32(hdr[:4])), binary.BigEndian.Uint32(hdr[4:8]), int64(8)
		switch n {
		case 0:
			n = size - off
		case 1:
			if _, err := r.ReadAt(hdr[8:16], off+8); err != nil {
				return nil, fmt.Errorf("segment: read box at %d: %w", off, err)
			}
			n, head = int64(binary.BigEndian.Uint64(hdr[8:16])), 16
		}
		if n < head || n > size-off {
			return nil, &BoxError{Path: fourCC(typ), Offset: off, Err: errTruncated}
		}
		switch typ {
		case boxMoof:
			return nil, fmt.Errorf("%w: fragmented (moof)", ErrUnindexed)
		case boxMoov:
			if n-head > maxMoov {
				return nil, fmt.Errorf("%w: moov of %d bytes", ErrUnindexed, n-head)
			}
			moov := make([]byte, n-head)
			if _, err := r.ReadAt(moov, off+head); err != nil {
				return nil, fmt.Errorf("segment: read moov: %w", err)
			}
			return moov, nil
		}
		off += n
	}
	return nil, &BoxError{Path: "moov", Offset: -1, Err: errors.New("no moov box")}
}

// stblTables are a track's sample tables, as their payloads.
type stblTables struct {
	stsd, stts, ctts, stsz, stsc, stco []byte
	co64                               bool
}

// indexTrak measures one trak.
func indexTrak(trak []byte, movieTS uint32, size int64) (IndexTrack, error) {
	var t IndexTrack
	var elst, mdia []byte
	err := eachBox(trak, func(b box) error {
		switch b.typ {
		case boxEdts:
			if e, ok, err := findBox(b.payload, boxElst); err != nil {
				return err
			} else if ok {
				elst = e.payload
			}
		case boxMdia:
			mdia = b.payload
		}
		return nil
	})
	if err != nil || mdia == nil {
		return t, fmt.Errorf("trak: %w", errors.Join(err, errors.New("no mdia")))
	}
	timescale, handler, tabs, err := indexMdia(mdia)
	if err != nil {
		return t, err
	}
	switch handler {
	case handlerVide:
		t.Kind = "video"
	case handlerSoun:
		t.Kind = "audio"
	default:
		t.Kind = fourCC(handler)
	}
	if t.Kind == "video" {
		t.Width, t.Height, t.Colr, t.Primaries, t.Transfer, t.Matrix = readVisualEntry(tabs.stsd)
	}
	n, err := checkSamples(tabs, size)
	if err != nil {
		return t, err
	}
	if n == 0 {
		return t, fmt.Errorf("%w: an empty track", ErrUnindexed)
	}
	t.Samples = n
	sum, minPTS, raw, err := timing(tabs, n)
	if err != nil {
		return t, err
	}
	if raw && t.Kind == "audio" {
		// A sample per PCM sample: ffmpeg reads such tracks in packets of many.
		return t, fmt.Errorf("%w: raw audio samples", ErrUnindexed)
	}
	start, dur, err := edited(elst, movieTS, timescale, t.Kind == "audio", sum, minPTS)
	if err != nil {
		return t, err
	}
	t.Start, t.Duration = start, dur
	return t, nil
}

// indexMdia reads the media timescale, the handler and the sample tables.
func indexMdia(mdia []byte) (timescale, handler uint32, tabs stblTables, err error) {
	var stbl []byte
	err = eachBox(mdia, func(b box) error {
		rd := reader{b: b.payload}
		switch b.typ {
		case boxMdhd:
			rd.timedBox()
			timescale = rd.u32()
		case boxHdlr:
			rd.fullBox()
			rd.u32()
			handler = rd.u32()
		case boxMinf:
			s, ok, err := findBox(b.payload, boxStbl)
			if err != nil || !ok {
				return fmt.Errorf("minf: %w", errors.Join(err, errors.New("no stbl")))
			}
			stbl = s.payload
		}
		return nil
	})
	if err == nil && (timescale == 0 || stbl == nil) {
		err = errors.New("mdia: no timescale or no stbl")
	}
	if err != nil {
		return 0, 0, tabs, err
	}
	err = eachBox(stbl, func(b box) error {
		switch fourCC(b.typ) {
		case "stsd":
			tabs.stsd = b.payload
		case "stts":
			tabs.stts = b.payload
		case "ctts":
			tabs.ctts = b.payload
		case "stsz":
			tabs.stsz = b.payload
		case "stsc":
			tabs.stsc = b.payload
		case "stco":
			tabs.stco = b.payload
		case "co64":
			tabs.stco, tabs.co64 = b.payload, true
		case "stz2":
			return fmt.Errorf("%w: stz2 sample sizes", ErrUnindexed)
		}
		return nil
	})
	if err == nil && (tabs.stts == nil || tabs.stsz == nil || tabs.stsc == nil || tabs.stco == nil) {
		err = errors.New("stbl: a sample table is missing")
	}
	return timescale, handler, tabs, err
}

// checkSamples returns the number of samples and checks that each chunk's samples end inside
// the file.
func checkSamples(tabs stblTables, size int64) (int, error) {
	sz := reader{b: tabs.stsz}
	sz.fullBox()
	uniform, count := sz.u32(), sz.u32()
	sc := reader{b: tabs.stsc}
	sc.fullBox()
	entries := sc.u32()
	co := reader{b: tabs.stco}
	co.fullBox()
	chunks := co.u32()
	if sz.short || sc.short || co.short || (uniform == 0 && uint64(len(sz.rest())) < 4*uint64(count)) {
		return 0, errors.New("stsz, stsc or stco: short")
	}
	sample := uint32(0)
	first, perChunk := uint32(0), uint32(0)
	next := func() {
		first, perChunk = sc.u32(), sc.u32()
		sc.u32() // sample description index
	}
	if entries > 0 {
		next()
		entries--
	}
	for c := uint32(1); c <= chunks; c++ {
		for entries > 0 && len(sc.rest()) >= 12 && binary.BigEndian.Uint32(sc.rest()) == c {
			next()
			entries--
		}
		if first == 0 || first > c {
			return 0, errors.New("stsc: chunks without a sample count")
		}
		off := int64(co.u32())
		if tabs.co64 {
			off = off<<32 | int64(co.u32())
		}
		end := off
		for i := uint32(0); i < perChunk && sample < count; i++ {
			if uniform != 0 {
				end += int64(uniform)
			} else {
				end += int64(sz.u32())
			}
			sample++
		}
		if co.short || end > size || off < 0 {
			return 0, fmt.Errorf("chunk %d ends at byte %d, past the end of the file (%d): truncated", c, end, size)
		}
	}
	if sample != count {
		return 0, fmt.Errorf("the chunks hold %d of %d samples", sample, count)
	}
	return int(count), nil
}

// timing sums the sample durations (stts) and finds the first presentation time (stts and
// ctts), in the media timescale; raw is whether every sample lasts one tick.
func timing(tabs stblTables, samples int) (sum, minPTS int64, raw bool, err error) {
	ts := reader{b: tabs.stts}
	ts.fullBox()
	n := ts.u32()
	ct := reader{b: tabs.ctts}
	var ctLeft uint32
	var ctOff int64
	if tabs.ctts != nil {
		ct.fullBox()
		ct.u32() // entry count: the reads below stop at the end of the box
	}
	minPTS, raw = math.MaxInt64, true
	counted := 0
	for i := uint32(0); i < n && !ts.short; i++ {
		cnt, delta := ts.u32(), int64(ts.u32())
		raw = raw && delta == 1
		for range cnt {
			if tabs.ctts != nil && ctLeft == 0 && len(ct.rest()) >= 8 {
				ctLeft, ctOff = ct.u32(), int64(int32(ct.u32())) // signed, as ffmpeg reads it
			}
			if ctLeft > 0 {
				ctLeft--
			}
			minPTS = min(minPTS, sum+ctOff)
			sum += delta
			if counted++; counted > samples {
				return 0, 0, false, errors.New("stts: more samples than stsz")
			}
		}
	}
	if ts.short || counted != samples {
		return 0, 0, false, fmt.Errorf("stts: %d of %d samples", counted, samples)
	}
	if samples == 0 {
		minPTS, raw = 0, false
	}
	return sum, minPTS, raw, nil
}

// edited applies the edit list as ffmpeg's mov demuxer does for the lists muxers write:
// empty edits delay the track, and one edit from media_time on (the video's first
// presentation time; an audio track's priming) plays until the media or the edit ends,
// whichever comes first. Other lists are ErrUnindexed. Times are converted to the media
// timescale first, as ffmpeg does, so that durations come out as ffprobe prints them.
func edited(elst []byte, movieTS, timescale uint32, audio bool, sum, minPTS int64) (start, dur time.Duration, err error) {
	at := func(v int64) time.Duration {
		return time.Duration(float64(v) * float64(time.Second) / float64(timescale))
	}
	toMedia := func(v uint64) int64 {
		return int64((v*uint64(timescale) + uint64(movieTS)/2) / uint64(movieTS))
	}
	if elst == nil {
		if minPTS != 0 {
			return 0, 0, fmt.Errorf("%w: no edit list, first presentation at %d", ErrUnindexed, minPTS)
		}
		return 0, at(sum), nil
	}
	rd := reader{b: elst}
	v, _ := rd.fullBox()
	n := rd.u32()
	var delay, end int64
	edits := 0
	for i := uint32(0); i < n; i++ {
		var d uint64
		var mediaTime int64
		if v == 1 {
			d, mediaTime = rd.u64(), int64(rd.u64())
		} else {
			d, mediaTime = uint64(rd.u32()), int64(int32(rd.u32()))
		}
		rate := rd.u32()
		switch {
		case rd.short || d > math.MaxUint64/(1<<32):
			return 0, 0, errors.New("elst: short, or an edit too long")
		case mediaTime == -1 && edits == 0:
			delay += toMedia(d)
			continue
		case edits > 0 || rate != 1<<16 || d == 0 || mediaTime < 0:
			return 0, 0, fmt.Errorf("%w: an edit list of several segments, or at another rate", ErrUnindexed)
		case !audio && mediaTime != minPTS, audio && (mediaTime != 0 && minPTS != 0 || mediaTime > sum):
			return 0, 0, fmt.Errorf("%w: an edit that cuts into the media", ErrUnindexed)
		}
		edits++
		end = min(mediaTime+toMedia(d), sum+minPTS) - mediaTime
	}
	if edits == 0 {
		return 0, 0, fmt.Errorf("%w: an edit list of empty edits", ErrUnindexed)
	}
	return at(delay), at(end), nil
}

// readVisualEntry reads a visual sample entry's dimensions and its colr box.
func readVisualEntry(stsd []byte) (w, h int, colr bool, prim, trc, matrix string) {
	r := reader{b: stsd}
	r.fullBox()
	if r.u32() == 0 {
		return
	}
	entry, _, err := nextBox(r.rest())
	if err != nil {
		return
	}
	er := reader{b: entry.payload}
	er.skip(8 + 16)
	w, h = int(er.u16()), int(er.u16())
	er.skip(4 + 4 + 4 + 2 + 32 + 2 + 2)
	c, ok, err := findBox(er.rest(), 'c'<<24|'o'<<16|'l'<<8|'r')
	if err != nil || !ok || len(c.payload) < 10 {
		return
	}
	if kind := string(c.payload[:4]); kind != "nclx" && kind != "nclc" {
		return
	}
	p := c.payload[4:]
	return w, h, true, colourName(primariesNames, p[0:2]), colourName(transferNames, p[2:4]), colourName(matrixNames, p[4:6])
}

func colourName(names map[uint16]string, b []byte) string { return names[binary.BigEndian.Uint16(b)] }

// The ISO/IEC 23091-2 (H.273) code points, named as ffmpeg names them; 2 (unspecified) has no
// name, as ffprobe's "unknown".
var (
	primariesNames = map[uint16]string{1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
		8: "film", 9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "jedec-p22"}
	transferNames = map[uint16]string{1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m",
		8: "linear", 9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
		14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
	matrixNames = map[uint16]string{0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m",
		8: "ycgco", 9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc", 13: "chroma-derived-c", 14: "ictcp"}
)
