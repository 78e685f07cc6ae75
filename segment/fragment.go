package segment

import (
	"errors"
	"fmt"
)

// tfhd flags.
const (
	tfhdBaseDataOffset   = 0x000001
	tfhdSampleDescIndex  = 0x000002
	tfhdDefaultDuration  = 0x000008
	tfhdDefaultSize      = 0x000010
	tfhdDefaultFlags     = 0x000020
	tfhdDurationIsEmpty  = 0x010000
	trunDataOffset       = 0x000001
	trunFirstSampleFlags = 0x000004
	trunSampleDuration   = 0x000100
	trunSampleSize       = 0x000200
	trunSampleFlags      = 0x000400
	trunSampleCTO        = 0x000800

	// sampleIsNonSync is sample_is_non_sync_sample in the sample flags (ISO/IEC 14496-12 8.8.3.1).
	sampleIsNonSync = 0x00010000
)

// fragment is what the segmenter needs from one moof.
type fragment struct {
	baseTime  uint64 // tfdt baseMediaDecodeTime
	hasTfdt   bool
	duration  uint64 // sum of the sample durations, in the track timescale
	samples   int
	firstCTO  int64 // composition offset of the first sample
	firstSync bool  // the first sample is a sync sample
}

var (
	errNoTraf    = errors.New("no traf")
	errManyTrafs = errors.New("several traf boxes: a stream must carry exactly one track")
	errNoTfhd    = errors.New("traf without tfhd")
	errBaseData  = errors.New("tfhd has an explicit base_data_offset: segments could not be cut from it (write with -movflags +default_base_moof)")
)

// parseMoof reads a moof payload without allocating.
func parseMoof(moof []byte, ti *trackInfo) (fragment, error) {
	var (
		f    fragment
		traf []byte
		n    int
	)
	for b := moof; len(b) > 0; {
		bx, rest, err := nextBox(b)
		if err != nil {
			return f, err
		}
		if bx.typ == boxTraf {
			traf = bx.payload
			n++
		}
		b = rest
	}
	switch {
	case n == 0:
		return f, errNoTraf
	case n > 1:
		return f, errManyTrafs
	}

	var (
		sawTfhd  bool
		defDur   = ti.trex.duration
		defFlags = ti.trex.flags
		first    = true
	)
	for b := traf; len(b) > 0; {
		bx, rest, err := nextBox(b)
		if err != nil {
			return f, err
		}
		b = rest
		switch bx.typ {
		case boxTfhd:
			r := reader{b: bx.payload}
			_, flags := r.fullBox()
			id := r.u32()
			if flags&tfhdBaseDataOffset != 0 {
				return f, errBaseData
			}
			if flags&tfhdSampleDescIndex != 0 {
				r.u32()
			}
			if flags&tfhdDefaultDuration != 0 {
				defDur = r.u32()
			}
			if flags&tfhdDefaultSize != 0 {
				r.u32()
			}
			if flags&tfhdDefaultFlags != 0 {
				defFlags = r.u32()
			}
			if r.short {
				return f, fmt.Errorf("tfhd: %w", errTruncated)
			}
			if id != ti.ID {
				return f, fmt.Errorf("tfhd track_ID %d, but the moov describes track %d", id, ti.ID)
			}
			if flags&tfhdDurationIsEmpty != 0 {
				return f, nil
			}
			sawTfhd = true
		case boxTfdt:
			r := reader{b: bx.payload}
			if v, _ := r.fullBox(); v == 1 {
				f.baseTime = r.u64()
			} else {
				f.baseTime = uint64(r.u32())
			}
			if r.short {
				return f, fmt.Errorf("tfdt: %w", errTruncated)
			}
			f.hasTfdt = true
		case boxTrun:
			if !sawTfhd {
				return f, errNoTfhd
			}
			if err := parseTrun(bx.payload, defDur, defFlags, first, &f); err != nil {
				return f, fmt.Errorf("trun: %w", err)
			}
			if f.samples > 0 {
				first = false
			}
		}
	}
	if !sawTfhd {
		return f, errNoTfhd
	}
	if ti.Kind == "audio" {
		f.firstSync = true // every audio sample is a sync sample, whatever the flags say
	}
	return f, nil
}

// parseTrun adds one trun's samples to f; for the fragment's first sample it also records
// the composition offset and whether it is a sync sample.
func parseTrun(b []byte, defDur, defFlags uint32, first bool, f *fragment) error {
	r := reader{b: b}
	version, flags := r.fullBox()
	count := r.u32()
	if flags&trunDataOffset != 0 {
		r.u32()
	}
	firstFlags, hasFirstFlags := uint32(0), flags&trunFirstSampleFlags != 0
	if hasFirstFlags {
		firstFlags = r.u32()
	}
	if r.short {
		return errTruncated
	}
	per := 0
	for _, bit := range [...]uint32{trunSampleDuration, trunSampleSize, trunSampleFlags, trunSampleCTO} {
		if flags&bit != 0 {
			per += 4
		}
	}
	if uint64(count)*uint64(per) > uint64(len(r.rest())) {
		return fmt.Errorf("%d samples of %d bytes do not fit in %d bytes: %w", count, per, len(r.rest()), errTruncated)
	}
	if per == 0 { // every sample takes the defaults
		f.duration += uint64(count) * uint64(defDur)
		if first && count > 0 {
			sflags := defFlags
			if hasFirstFlags {
				sflags = firstFlags
			}
			f.firstCTO, f.firstSync = 0, sflags&sampleIsNonSync == 0
		}
		f.samples += int(count)
		return nil
	}
	for i := uint32(0); i < count; i++ {
		dur, sflags, cto := defDur, defFlags, int64(0)
		if flags&trunSampleDuration != 0 {
			dur = r.u32()
		}
		if flags&trunSampleSize != 0 {
			r.u32()
		}
		if flags&trunSampleFlags != 0 {
			sflags = r.u32()
		}
		if flags&trunSampleCTO != 0 {
			v := r.u32()
			if version == 0 {
				cto = int64(v)
			} else {
				cto = int64(int32(v))
			}
		}
		if i == 0 && first {
			if hasFirstFlags {
				sflags = firstFlags
			}
			f.firstCTO, f.firstSync = cto, sflags&sampleIsNonSync == 0
		}
		f.duration += uint64(dur)
	}
	f.samples += int(count)
	return nil
}
