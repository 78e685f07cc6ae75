package segment

import (
	"strings"
	"testing"
)

// descriptor builds an MPEG-4 descriptor; long uses ffmpeg's four-byte size form.
func descriptor(tag byte, long bool, body []byte) []byte {
	n := len(body)
	if long {
		return cat([]byte{tag, 0x80, 0x80, 0x80, byte(n)}, body)
	}
	return cat([]byte{tag, byte(n)}, body)
}

// esdsPayload builds an ES_Descriptor with a DecoderConfigDescriptor for oti and, when dsi is
// not nil, a DecoderSpecificInfo.
func esdsPayload(oti byte, dsi []byte) []byte {
	dc := cat([]byte{oti, 0x15}, zeros(3), be32(128000), be32(128000))
	if dsi != nil {
		dc = append(dc, descriptor(0x05, true, dsi)...)
	}
	es := cat(be16(1), []byte{0}, descriptor(0x04, true, dc), descriptor(0x06, true, []byte{2}))
	return descriptor(0x03, true, es)
}

func TestCodecStrings(t *testing.T) {
	hvcc := func(b1 byte, compat uint32, constraints [6]byte, level byte) []byte {
		return cat([]byte{1, b1}, be32(compat), constraints[:], []byte{level}, zeros(10))
	}
	full := func(b ...byte) []byte { return cat([]byte{0, 0, 0, 0}, b) } // FullBox header, then b
	esdsFlags := descriptor(0x03, false, cat(be16(1), []byte{0xe0}, be16(3), []byte{3}, []byte("a:b"), be16(5),
		descriptor(0x04, false, cat([]byte{0x40, 0x15}, zeros(11), descriptor(0x05, false, []byte{0x12, 0x10})))))

	tests := []struct {
		name  string
		fn    func(string, []byte) (string, error)
		entry string
		cfg   []byte
		want  string
		err   string
	}{
		{"avc high 3.1", avcCodec, "avc1", []byte{1, 0x64, 0x00, 0x1f, 0xff}, "avc1.64001f", ""},
		{"avc3 constrained baseline", avcCodec, "avc3", []byte{1, 0x42, 0xc0, 0x1e}, "avc3.42c01e", ""},
		{"avc short", avcCodec, "avc1", []byte{1, 0x64}, "", "too short"},
		{"avc version", avcCodec, "avc1", []byte{0, 0x64, 0, 0x1f}, "", "configurationVersion 0"},

		{"hevc main", hevcCodec, "hvc1", hvcc(0x01, 0x60000000, [6]byte{0xb0}, 93), "hvc1.1.6.L93.B0", ""},
		{"hevc main10 high tier", hevcCodec, "hev1", hvcc(0x22, 0x20000000, [6]byte{0x90}, 120), "hev1.2.4.H120.90", ""},
		{"hevc profile space and inner zero byte", hevcCodec, "hvc1", hvcc(0x41, 0x40000000, [6]byte{0xb0, 0, 0x08}, 60), "hvc1.A1.2.L60.B0.0.8", ""},
		{"hevc all constraints zero", hevcCodec, "hvc1", hvcc(0x01, 0x60000000, [6]byte{}, 90), "hvc1.1.6.L90", ""},
		{"hevc rext", hevcCodec, "hvc1", hvcc(0x04, 0x08000000, [6]byte{0x98, 0x08}, 93), "hvc1.4.10.L93.98.8", ""},
		{"hevc short", hevcCodec, "hvc1", []byte{1, 1, 0}, "", "too short"},

		{"vp9 profile 0", vp9Codec, "vp09", cat([]byte{1, 0, 0, 0}, []byte{0, 31, 0x80, 1, 1, 1, 0, 0}), "vp09.00.31.08", ""},
		{"vp9 profile 2 10-bit", vp9Codec, "vp09", cat([]byte{1, 0, 0, 0}, []byte{2, 41, 0xa2, 9, 16, 9, 0, 0}), "vp09.02.41.10", ""},
		{"vp9 version 0", vp9Codec, "vp09", []byte{0, 0, 0, 0, 0, 10, 0x80}, "", "vpcC version 0"},

		{"av1 main 8-bit", av1Codec, "av01", []byte{0x81, 0x05, 0x0c, 0}, "av01.0.05M.08", ""},
		{"av1 high tier 10-bit", av1Codec, "av01", []byte{0x81, 0x0d, 0xc0, 0}, "av01.0.13H.10", ""},
		{"av1 professional 12-bit", av1Codec, "av01", []byte{0x81, 0x48, 0x60, 0}, "av01.2.08M.12", ""},
		{"av1 bad marker", av1Codec, "av01", []byte{0x01, 0x05, 0, 0}, "", "marker"},

		{"aac lc", mp4aCodec, "mp4a", full(esdsPayload(0x40, []byte{0x11, 0x90})...), "mp4a.40.2", ""},
		{"he-aac", mp4aCodec, "mp4a", full(esdsPayload(0x40, []byte{0x2b, 0x11, 0x88})...), "mp4a.40.5", ""},
		{"usac escape", mp4aCodec, "mp4a", full(esdsPayload(0x40, []byte{0xf9, 0x40})...), "mp4a.40.42", ""},
		{"mp3", mp4aCodec, "mp4a", full(esdsPayload(0x6b, nil)...), "mp4a.6B", ""},
		{"short size forms and ES flags", mp4aCodec, "mp4a", full(esdsFlags...), "mp4a.40.2", ""},
		{"no DecoderSpecificInfo", mp4aCodec, "mp4a", full(esdsPayload(0x40, nil)...), "", "no DecoderSpecificInfo"},
		{"not ES_Descriptor", mp4aCodec, "mp4a", full(0x04, 0), "", "want ES_Descriptor"},
		{"truncated descriptor", mp4aCodec, "mp4a", full(0x03, 0x20, 0), "", "too short"},
		{"descriptor size too long", mp4aCodec, "mp4a", full(0x03, 0x80, 0x80, 0x80, 0x80, 0x01), "", "longer than 4 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.fn(tc.entry, tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestAACChannels(t *testing.T) {
	for _, tc := range []struct {
		asc  []byte
		want int
	}{
		{[]byte{0x11, 0x90}, 2},                   // LC, 48 kHz, stereo
		{[]byte{0x11, 0x88}, 1},                   // mono
		{[]byte{0x11, 0xb0}, 6},                   // 5.1
		{[]byte{0x11, 0xb8}, 8},                   // 7.1
		{[]byte{0x11, 0x80}, 0},                   // program config element
		{[]byte{0x17, 0x80, 0x00, 0x00, 0x10}, 2}, // explicit 24-bit frequency
		{[]byte{0xf9, 0x46, 0x40}, 2},             // escaped object type 42
		{[]byte{0x11}, 0},                         // truncated
		{nil, 0},
	} {
		if got := aacChannels(tc.asc); got != tc.want {
			t.Errorf("aacChannels(% x) = %d, want %d", tc.asc, got, tc.want)
		}
	}
}
