package segment

import (
	"errors"
	"fmt"
	"math"
)

// Track describes the one track of a stream, read from its moov box.
type Track struct {
	Kind      string // "video" or "audio"
	ID        uint32 // track_ID (tkhd)
	Timescale uint32 // media timescale (mdhd): ticks per second
	// Codec is the RFC 6381 codecs string: avc1.64001f, hvc1.1.6.L93.B0, mp4a.40.2, Opus,
	// vp09.00.31.08, av01.0.05M.08, ... For a sample entry this package does not know, the
	// sample entry type (e.g. "mp4v").
	Codec      string
	Width      int    // video: from the visual sample entry
	Height     int    // video
	SampleRate int    // audio: from the audio sample entry (the media timescale if it says 0)
	Channels   int    // audio
	Language   string // ISO 639-2/T code from mdhd ("und" when not set)
}

// trackInfo is a Track and what the fragment parser needs from the moov.
type trackInfo struct {
	Track
	trex trex
	// ptsOffset converts decode time plus composition offset to presentation time: what the
	// edit list adds (an initial empty edit) or removes (the media_time of the first edit).
	ptsOffset int64
}

// trex holds a track's fragment defaults (mvex/trex).
type trex struct {
	duration, size, flags uint32
}

// parseMoov reads the init segment's moov payload. One track per stream is the contract.
func parseMoov(moov []byte) (trackInfo, error) {
	var (
		ti        trackInfo
		traks     int
		movieTS   uint32
		trakBox   []byte
		mvex      []byte
		sawMvex   bool
		edtsEntry []byte
	)
	err := eachBox(moov, func(b box) error {
		switch b.typ {
		case boxMvhd:
			r := reader{b: b.payload}
			r.timedBox()
			movieTS = r.u32()
		case boxTrak:
			traks++
			trakBox = b.payload
		case boxMvex:
			mvex, sawMvex = b.payload, true
		}
		return nil
	})
	if err != nil {
		return ti, &BoxError{Path: "moov", Offset: -1, Err: err}
	}
	if traks != 1 {
		return ti, &BoxError{Path: "moov", Offset: -1, Err: fmt.Errorf("%d tracks: a stream must carry exactly one track (one ffmpeg output per rendition)", traks)}
	}
	if !sawMvex {
		return ti, &BoxError{Path: "moov", Offset: -1, Err: errors.New("no mvex: not a fragmented MP4 (write it with -movflags +frag_keyframe+empty_moov+default_base_moof)")}
	}
	if err := ti.parseTrak(trakBox, &edtsEntry); err != nil {
		return ti, err
	}
	if edtsEntry != nil {
		if err := ti.parseElst(edtsEntry, movieTS); err != nil {
			return ti, &BoxError{Path: "moov/trak/edts/elst", Offset: -1, Err: err}
		}
	}
	found := false
	err = eachBox(mvex, func(b box) error {
		if b.typ != boxTrex {
			return nil
		}
		r := reader{b: b.payload}
		r.fullBox()
		id := r.u32()
		r.u32() // default_sample_description_index
		t := trex{duration: r.u32(), size: r.u32(), flags: r.u32()}
		if r.short {
			return errShortConfig
		}
		if id == ti.ID {
			ti.trex, found = t, true
		}
		return nil
	})
	if err != nil {
		return ti, &BoxError{Path: "moov/mvex", Offset: -1, Err: err}
	}
	if !found {
		return ti, &BoxError{Path: "moov/mvex", Offset: -1, Err: fmt.Errorf("no trex for track %d", ti.ID)}
	}
	return ti, nil
}

func (ti *trackInfo) parseTrak(trak []byte, elst *[]byte) error {
	var mdia []byte
	err := eachBox(trak, func(b box) error {
		switch b.typ {
		case boxTkhd:
			r := reader{b: b.payload}
			r.timedBox()
			ti.ID = r.u32()
			if r.short {
				return fmt.Errorf("tkhd: %w", errShortConfig)
			}
		case boxEdts:
			e, ok, err := findBox(b.payload, boxElst)
			if err != nil {
				return fmt.Errorf("edts: %w", err)
			}
			if ok {
				*elst = e.payload
			}
		case boxMdia:
			mdia = b.payload
		}
		return nil
	})
	if err != nil {
		return &BoxError{Path: "moov/trak", Offset: -1, Err: err}
	}
	if mdia == nil {
		return &BoxError{Path: "moov/trak", Offset: -1, Err: errors.New("no mdia")}
	}
	var handler uint32
	var minf []byte
	err = eachBox(mdia, func(b box) error {
		switch b.typ {
		case boxMdhd:
			r := reader{b: b.payload}
			v := r.timedBox()
			ti.Timescale = r.u32()
			if v == 1 {
				r.u64() // duration
			} else {
				r.u32()
			}
			lang := r.u16()
			if r.short {
				return fmt.Errorf("mdhd: %w", errShortConfig)
			}
			ti.Language = "und"
			if lang != 0 && lang != 0x7fff {
				ti.Language = string([]byte{byte(lang>>10&31) + 0x60, byte(lang>>5&31) + 0x60, byte(lang&31) + 0x60})
			}
		case boxHdlr:
			r := reader{b: b.payload}
			r.fullBox()
			r.u32() // pre_defined
			handler = r.u32()
			if r.short {
				return fmt.Errorf("hdlr: %w", errShortConfig)
			}
		case boxMinf:
			minf = b.payload
		}
		return nil
	})
	if err != nil {
		return &BoxError{Path: "moov/trak/mdia", Offset: -1, Err: err}
	}
	if ti.Timescale == 0 {
		return &BoxError{Path: "moov/trak/mdia/mdhd", Offset: -1, Err: errors.New("missing, or timescale 0")}
	}
	switch handler {
	case handlerVide:
		ti.Kind = "video"
	case handlerSoun:
		ti.Kind = "audio"
	default:
		return &BoxError{Path: "moov/trak/mdia/hdlr", Offset: -1, Err: fmt.Errorf("handler %q: only video and audio tracks are supported", fourCC(handler))}
	}
	stbl, ok, err := findBox(minf, boxStbl)
	if err == nil && !ok {
		err = errors.New("no stbl")
	}
	if err != nil {
		return &BoxError{Path: "moov/trak/mdia/minf", Offset: -1, Err: err}
	}
	stsd, ok, err := findBox(stbl.payload, boxStsd)
	if err == nil && !ok {
		err = errors.New("no stsd")
	}
	if err != nil {
		return &BoxError{Path: "moov/trak/mdia/minf/stbl", Offset: -1, Err: err}
	}
	if err := ti.parseStsd(stsd.payload); err != nil {
		return &BoxError{Path: "moov/trak/mdia/minf/stbl/stsd", Offset: -1, Err: err}
	}
	return nil
}

// parseStsd reads the first sample entry: dimensions or rate/channels, and the codec string.
func (ti *trackInfo) parseStsd(stsd []byte) error {
	r := reader{b: stsd}
	r.fullBox()
	if n := r.u32(); n == 0 || r.short {
		return errors.New("no sample entry")
	}
	entry, _, err := nextBox(r.rest())
	if err != nil {
		return err
	}
	name := fourCC(entry.typ)
	er := reader{b: entry.payload}
	er.skip(8) // reserved, data_reference_index
	var children []byte
	if ti.Kind == "video" {
		er.skip(16) // pre_defined, reserved, pre_defined[3]
		ti.Width = int(er.u16())
		ti.Height = int(er.u16())
		er.skip(4 + 4 + 4 + 2 + 32 + 2 + 2) // resolutions, reserved, frame_count, compressorname, depth, pre_defined
		children = er.rest()
	} else {
		version := er.u16() // QuickTime sound description version; 0 in ISO files
		er.skip(6)
		ti.Channels = int(er.u16())
		er.skip(2 + 2 + 2) // samplesize, pre_defined, reserved
		ti.SampleRate = int(er.u32() >> 16)
		switch version {
		case 1:
			er.skip(16)
		case 2:
			er.skip(36)
		}
		children = er.rest()
		if ti.SampleRate == 0 {
			ti.SampleRate = int(ti.Timescale)
		}
	}
	if er.short {
		return fmt.Errorf("%s sample entry: %w", name, errShortConfig)
	}
	config := func(t uint32) ([]byte, error) {
		b, ok, err := findBox(children, t)
		if err != nil {
			return nil, fmt.Errorf("%s sample entry: %w", name, err)
		}
		if !ok {
			return nil, fmt.Errorf("%s sample entry has no %s box", name, fourCC(t))
		}
		return b.payload, nil
	}
	var codec func(string, []byte) (string, error)
	var cfgType uint32
	switch entry.typ {
	case boxAvc1, boxAvc3:
		codec, cfgType = avcCodec, boxAvcC
	case boxHvc1, boxHev1:
		codec, cfgType = hevcCodec, boxHvcC
	case boxVp09:
		codec, cfgType = vp9Codec, boxVpcC
	case boxAv01:
		codec, cfgType = av1Codec, boxAv1C
	case boxMp4a:
		codec, cfgType = mp4aCodec, boxEsds
	default:
		// Opus, fLaC, ac-3, ec-3: the codecs string is the sample entry type. Entries this
		// package does not know get the same, which is at least recognizable.
		ti.Codec = name
		if entry.typ == boxOpus {
			// dOps OutputChannelCount: what the stream has, whatever the entry says.
			if dops, err := config(boxDOps); err == nil && len(dops) >= 2 && dops[1] > 0 {
				ti.Channels = int(dops[1])
			}
		}
		return nil
	}
	cfg, err := config(cfgType)
	if err != nil {
		return err
	}
	ti.Codec, err = codec(name, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", fourCC(cfgType), err)
	}
	if entry.typ == boxMp4a {
		if _, asc, err := parseEsds(cfg); err == nil && aacChannels(asc) > 0 {
			ti.Channels = aacChannels(asc)
		}
	}
	return nil
}

// parseElst turns the edit list into ptsOffset: leading empty edits (media_time -1) delay the
// presentation by their duration (movie timescale, converted to the media timescale), and the
// first real edit's media_time is where presentation starts.
func (ti *trackInfo) parseElst(elst []byte, movieTS uint32) error {
	r := reader{b: elst}
	v, _ := r.fullBox()
	n := r.u32()
	var delay int64
	for i := uint32(0); i < n && !r.short; i++ {
		var dur uint64
		var mediaTime int64
		if v == 1 {
			dur, mediaTime = r.u64(), int64(r.u64())
		} else {
			dur, mediaTime = uint64(r.u32()), int64(int32(r.u32()))
		}
		r.u32() // media_rate
		if r.short {
			break
		}
		if mediaTime == -1 {
			if movieTS > 0 && dur < math.MaxInt64/uint64(ti.Timescale) {
				delay += int64(dur * uint64(ti.Timescale) / uint64(movieTS))
			}
			continue
		}
		ti.ptsOffset = delay - mediaTime
		return nil
	}
	if r.short {
		return errShortConfig
	}
	ti.ptsOffset = delay
	return nil
}
