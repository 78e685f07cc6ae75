package segment

import (
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// The functions here build RFC 6381 "codecs" strings from a sample entry's configuration box
// payload (the bytes after the box header). The prefix is always the sample entry's type, so
// an avc3 stream says "avc3.…" and an hev1 stream "hev1.…", as ISO/IEC 14496-15 requires.

var errShortConfig = errors.New("configuration record too short")

// avcCodec: "avc1.PPCCLL" from an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3):
// profile_idc, the constraint flags byte and level_idc, in lower-case hex.
func avcCodec(entry string, avcC []byte) (string, error) {
	if len(avcC) < 4 {
		return "", errShortConfig
	}
	if avcC[0] != 1 {
		return "", fmt.Errorf("avcC configurationVersion %d, want 1", avcC[0])
	}
	return fmt.Sprintf("%s.%02x%02x%02x", entry, avcC[1], avcC[2], avcC[3]), nil
}

// hevcCodec: "hvc1.<space><profile>.<compat>.<tier><level>.<constraints>" from an
// HEVCDecoderConfigurationRecord, as ISO/IEC 14496-15 Annex E.3 spells it:
//   - general_profile_space as "", "A", "B" or "C", then general_profile_idc in decimal;
//   - the 32 general_profile_compatibility_flags in reverse bit order, hex, no leading zeros;
//   - "L" (main tier) or "H" (high tier), then general_level_idc in decimal;
//   - the six constraint indicator bytes in hex, separated by dots, trailing zero bytes omitted.
func hevcCodec(entry string, hvcC []byte) (string, error) {
	if len(hvcC) < 13 {
		return "", errShortConfig
	}
	if hvcC[0] != 1 {
		return "", fmt.Errorf("hvcC configurationVersion %d, want 1", hvcC[0])
	}
	space := hvcC[1] >> 6
	tier := (hvcC[1] >> 5) & 1
	profile := hvcC[1] & 0x1f
	compat := uint32(hvcC[2])<<24 | uint32(hvcC[3])<<16 | uint32(hvcC[4])<<8 | uint32(hvcC[5])
	constraints := hvcC[6:12]
	level := hvcC[12]

	var sb strings.Builder
	sb.WriteString(entry)
	sb.WriteByte('.')
	if space > 0 {
		sb.WriteByte('A' + space - 1)
	}
	sb.WriteString(strconv.Itoa(int(profile)))
	sb.WriteByte('.')
	sb.WriteString(strings.ToUpper(strconv.FormatUint(uint64(bits.Reverse32(compat)), 16)))
	sb.WriteByte('.')
	if tier == 1 {
		sb.WriteByte('H')
	} else {
		sb.WriteByte('L')
	}
	sb.WriteString(strconv.Itoa(int(level)))
	n := len(constraints)
	for n > 0 && constraints[n-1] == 0 {
		n--
	}
	for _, c := range constraints[:n] {
		sb.WriteByte('.')
		sb.WriteString(strings.ToUpper(strconv.FormatUint(uint64(c), 16)))
	}
	return sb.String(), nil
}

// vp9Codec: "vp09.PP.LL.DD" (profile, level, bit depth; two decimal digits each) from a
// VPCodecConfigurationBox payload (a FullBox, version 1), the short form of the VP9 codec
// string ("VP Codec ISO Media File Format Binding", Codecs Parameter String).
func vp9Codec(entry string, vpcC []byte) (string, error) {
	if len(vpcC) < 7 {
		return "", errShortConfig
	}
	if vpcC[0] != 1 {
		return "", fmt.Errorf("vpcC version %d, want 1", vpcC[0])
	}
	profile, level, depth := vpcC[4], vpcC[5], vpcC[6]>>4
	return fmt.Sprintf("%s.%02d.%02d.%02d", entry, profile, level, depth), nil
}

// av1Codec: "av01.P.LLT.DD" from an AV1CodecConfigurationRecord (AV1 ISOBMFF binding 2.3):
// seq_profile, seq_level_idx_0 as two digits, seq_tier_0 as M or H, bit depth as two digits.
func av1Codec(entry string, av1C []byte) (string, error) {
	if len(av1C) < 4 {
		return "", errShortConfig
	}
	if av1C[0] != 0x81 {
		return "", fmt.Errorf("av1C marker/version byte 0x%02x, want 0x81", av1C[0])
	}
	profile := av1C[1] >> 5
	level := av1C[1] & 0x1f
	tier := byte('M')
	if av1C[2]&0x80 != 0 {
		tier = 'H'
	}
	depth := 8
	if av1C[2]&0x40 != 0 { // high_bitdepth
		depth = 10
		if profile == 2 && av1C[2]&0x20 != 0 { // twelve_bit
			depth = 12
		}
	}
	return fmt.Sprintf("%s.%d.%02d%c.%02d", entry, profile, level, tier, depth), nil
}

// mp4aCodec: "mp4a.40.<audio object type>" from an esds box payload (a FullBox holding an
// ES_Descriptor, ISO/IEC 14496-1 7.2.6.5): the DecoderConfigDescriptor's objectTypeIndication
// in hex, then, for MPEG-4 audio (0x40), the AudioSpecificConfig's audioObjectType in decimal.
// Other object types give "mp4a.<oti>" (e.g. "mp4a.6B" for MP3).
func mp4aCodec(entry string, esds []byte) (string, error) {
	oti, asc, err := parseEsds(esds)
	if err != nil {
		return "", err
	}
	if oti != 0x40 {
		return fmt.Sprintf("%s.%02X", entry, oti), nil
	}
	if len(asc) < 1 {
		return "", errors.New("esds: no DecoderSpecificInfo")
	}
	aot := int(asc[0] >> 3)
	if aot == 31 { // escape: 32 + the next six bits
		if len(asc) < 2 {
			return "", fmt.Errorf("esds: AudioSpecificConfig: %w", errShortConfig)
		}
		aot = 32 + (int(asc[0]&7)<<3 | int(asc[1]>>5))
	}
	return fmt.Sprintf("%s.40.%d", entry, aot), nil
}

// aacChannels returns the channel count an AudioSpecificConfig's channelConfiguration gives
// (ISO/IEC 14496-3 1.6.3.5), or 0 when it is 0 (defined in a program config element) or the
// config is not one it can read. MP4 muxers write 2 in the sample entry whatever the stream
// has, so this is the count to believe.
func aacChannels(asc []byte) int {
	// audioObjectType (5 bits, or 11 with the escape), samplingFrequencyIndex (4 bits, and 24
	// more when it is 15), channelConfiguration (4 bits).
	var bitsRead uint
	read := func(n uint) int {
		v := 0
		for range n {
			byteI, bit := bitsRead/8, 7-bitsRead%8
			if int(byteI) >= len(asc) {
				return -1
			}
			v = v<<1 | int(asc[byteI]>>bit&1)
			bitsRead++
		}
		return v
	}
	if read(5) == 31 {
		read(6)
	}
	if read(4) == 15 {
		read(24)
	}
	switch c := read(4); {
	case c >= 1 && c <= 6:
		return c
	case c == 7:
		return 8
	}
	return 0
}

// parseEsds returns the objectTypeIndication and the DecoderSpecificInfo (nil if absent)
// from an esds payload.
func parseEsds(esds []byte) (oti byte, dsi []byte, err error) {
	r := reader{b: esds}
	r.fullBox()
	tag, body, err := readDescriptor(&r)
	if err != nil {
		return 0, nil, err
	}
	if tag != 0x03 {
		return 0, nil, fmt.Errorf("esds: descriptor tag 0x%02x, want ES_Descriptor (0x03)", tag)
	}
	es := reader{b: body}
	es.u16() // ES_ID
	f := es.u8()
	if f&0x80 != 0 { // streamDependenceFlag
		es.u16()
	}
	if f&0x40 != 0 { // URL_Flag
		es.skip(int(es.u8()))
	}
	if f&0x20 != 0 { // OCRstreamFlag
		es.u16()
	}
	if es.short {
		return 0, nil, fmt.Errorf("esds: ES_Descriptor: %w", errShortConfig)
	}
	for {
		tag, body, err = readDescriptor(&es)
		if err != nil {
			return 0, nil, fmt.Errorf("esds: no DecoderConfigDescriptor: %w", err)
		}
		if tag == 0x04 {
			break
		}
	}
	dc := reader{b: body}
	oti = dc.u8()
	dc.skip(1 + 3 + 4 + 4) // streamType/upStream/reserved, bufferSizeDB, maxBitrate, avgBitrate
	if dc.short {
		return 0, nil, fmt.Errorf("esds: DecoderConfigDescriptor: %w", errShortConfig)
	}
	for len(dc.rest()) > 0 {
		tag, body, err = readDescriptor(&dc)
		if err != nil {
			return 0, nil, fmt.Errorf("esds: DecoderConfigDescriptor: %w", err)
		}
		if tag == 0x05 {
			return oti, body, nil
		}
	}
	return oti, nil, nil
}

// readDescriptor reads one MPEG-4 descriptor: a tag byte, a size in one to four bytes of seven
// bits each (high bit = more), and the body.
func readDescriptor(r *reader) (tag byte, body []byte, err error) {
	tag = r.u8()
	size := 0
	for i := 0; ; i++ {
		if i == 4 {
			return 0, nil, fmt.Errorf("descriptor 0x%02x: size field longer than 4 bytes", tag)
		}
		c := r.u8()
		size = size<<7 | int(c&0x7f)
		if c&0x80 == 0 {
			break
		}
	}
	body = r.bytes(size)
	if r.short {
		return 0, nil, fmt.Errorf("descriptor 0x%02x: %w", tag, errShortConfig)
	}
	return tag, body, nil
}
