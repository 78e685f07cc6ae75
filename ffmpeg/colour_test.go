package ffmpeg

import "testing"

func TestWideColour(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    Stream
		want *Colour // nil: SDR, kept as it is
	}{
		{"HDR10", Stream{ColorTransfer: "smpte2084", ColorPrimaries: "bt2020", ColorSpace: "bt2020nc", ColorRange: "tv"},
			&Colour{"smpte2084", "bt2020", "bt2020nc", "tv"}},
		{"HLG, full range", Stream{ColorTransfer: "arib-std-b67", ColorPrimaries: "bt2020", ColorSpace: "bt2020nc", ColorRange: "pc"},
			&Colour{"arib-std-b67", "bt2020", "bt2020nc", "pc"}},
		{"PQ stating nothing else is BT.2100", Stream{ColorTransfer: "smpte2084", ColorPrimaries: "unknown"},
			&Colour{"smpte2084", "bt2020", "bt2020nc", "tv"}},
		{"Dolby Vision 8.1 without VUI colour", Stream{DVProfile: 8, DVCompat: 1},
			&Colour{"smpte2084", "bt2020", "bt2020nc", "tv"}},
		{"Dolby Vision 8.4 without VUI colour", Stream{DVProfile: 8, DVCompat: 4},
			&Colour{"arib-std-b67", "bt2020", "bt2020nc", "tv"}},
		{"Dolby Vision 8.1 with its VUI", Stream{DVProfile: 8, DVCompat: 1, ColorTransfer: "smpte2084", ColorPrimaries: "bt2020", ColorSpace: "bt2020nc", ColorRange: "tv"},
			&Colour{"smpte2084", "bt2020", "bt2020nc", "tv"}},
		{"BT.2020 SDR", Stream{ColorTransfer: "bt2020-10", ColorPrimaries: "bt2020", ColorSpace: "bt2020nc"},
			&Colour{"bt2020-10", "bt2020", "bt2020nc", "tv"}},
		{"BT.709", Stream{ColorTransfer: "bt709", ColorPrimaries: "bt709", ColorSpace: "bt709"}, nil},
		{"BT.601", Stream{ColorTransfer: "smpte170m", ColorPrimaries: "smpte170m", ColorSpace: "smpte170m"}, nil},
		{"untagged", Stream{}, nil},
		{"Dolby Vision 8.2 (SDR base)", Stream{DVProfile: 8, DVCompat: 2}, nil},
		{"Dolby Vision 5 (no compatible base)", Stream{DVProfile: 5}, nil},
	}
	for _, tt := range tests {
		got, ok := tt.s.WideColour()
		switch {
		case tt.want == nil && ok:
			t.Errorf("%s: %+v, want SDR", tt.name, got)
		case tt.want != nil && (!ok || got != *tt.want):
			t.Errorf("%s: %+v (%v), want %+v", tt.name, got, ok, *tt.want)
		case ok:
			if err := got.validate("c"); err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
		}
	}
}

func TestHighBitDepth(t *testing.T) {
	t.Parallel()
	for pix, want := range map[string]bool{
		"yuv420p10le": true, "yuv420p10": true, "p010le": true, "yuv444p12le": true, "yuv422p10be": true, "gray16le": true,
		"": false, "yuv420p": false, "yuvj420p": false, "nv12": false, "nv16": false, "yuv444p": false, "rgb24": false,
	} {
		if got := HighBitDepth(pix); got != want {
			t.Errorf("HighBitDepth(%q) = %v, want %v", pix, got, want)
		}
	}
}

// TestParseProbeColour: the colour tags and the Dolby Vision record reach the Stream.
func TestParseProbeColour(t *testing.T) {
	t.Parallel()
	p, err := ParseProbe([]byte(`{"streams":[{"index":0,"codec_type":"video","codec_name":"hevc","width":3840,"height":2160,
		"color_range":"tv","color_space":"bt2020nc","color_transfer":"smpte2084","color_primaries":"bt2020",
		"side_data_list":[{"side_data_type":"DOVI configuration record","dv_version_major":1,"dv_profile":8,"dv_level":6,
		"rpu_present_flag":1,"el_present_flag":0,"bl_present_flag":1,"dv_bl_signal_compatibility_id":1}]}],"format":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	s := p.Streams[0]
	if s.ColorTransfer != "smpte2084" || s.ColorPrimaries != "bt2020" || s.ColorSpace != "bt2020nc" || s.ColorRange != "tv" || s.DVProfile != 8 || s.DVCompat != 1 {
		t.Errorf("stream %+v", s)
	}
}
