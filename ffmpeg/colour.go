package ffmpeg

import (
	"slices"
	"strings"
)

// Colour is the colour of a video stream that an SDR output must convert to BT.709, in
// ffprobe's (and zscale's) names. Stream.WideColour makes one; every field is then set.
type Colour struct {
	Transfer  string // smpte2084 (PQ: HDR10), arib-std-b67 (HLG), or an SDR one (bt709...)
	Primaries string // bt2020, or what the stream states
	Matrix    string // bt2020nc, or what the stream states
	Range     string // tv | pc
}

// The names a Colour may hold: those zscale takes, so a probe of a crafted file cannot put
// anything else into a filter graph.
var (
	colourTransfers = []string{"smpte2084", "arib-std-b67", "bt709", "smpte170m", "bt470bg", "bt2020-10", "bt2020-12"}
	colourPrimaries = []string{"bt2020", "bt709", "smpte432", "smpte431", "smpte170m", "bt470bg"}
	colourMatrices  = []string{"bt2020nc", "bt2020c", "bt709", "smpte170m", "bt470bg"}
	colourRanges    = []string{"tv", "pc"}
)

// HDR reports whether the transfer is a high dynamic range one (PQ or HLG): tone-mapped.
func (c Colour) HDR() bool { return c.Transfer == "smpte2084" || c.Transfer == "arib-std-b67" }

// WideColour is the stream's colour when an SDR (8-bit BT.709) output cannot just carry its
// pixels: an HDR transfer (PQ or HLG) or BT.2020 primaries. ok is false for a BT.709 or BT.601
// stream, or one that states no colour (ffmpeg and players take it as BT.709).
//
// Dolby Vision profile 8 carries an HDR10 (8.1) or HLG (8.4) base layer, which its VUI states
// like any HDR stream; where the VUI says nothing the configuration record's compatibility id
// does. Profile 5 has no base layer that a decoder without Dolby Vision shows right: it is left
// as it is (not BT.2020 by its tags).
func (s Stream) WideColour() (Colour, bool) {
	c := Colour{Transfer: s.ColorTransfer, Primaries: s.ColorPrimaries, Matrix: s.ColorSpace, Range: s.ColorRange}
	if !slices.Contains(colourTransfers, c.Transfer) {
		switch s.DVCompat {
		case 1, 6: // HDR10, Blu-ray HDR10
			c.Transfer = "smpte2084"
		case 4: // HLG
			c.Transfer = "arib-std-b67"
		default:
			c.Transfer = "bt709"
		}
	}
	if !c.HDR() && c.Primaries != "bt2020" {
		return Colour{}, false
	}
	// An HDR stream that leaves the rest unstated is BT.2100: BT.2020 primaries and matrix.
	if !slices.Contains(colourPrimaries, c.Primaries) {
		c.Primaries = "bt2020"
	}
	if !slices.Contains(colourMatrices, c.Matrix) {
		c.Matrix = "bt2020nc"
	}
	if !slices.Contains(colourRanges, c.Range) {
		c.Range = "tv"
	}
	return c, true
}

// HighBitDepth reports whether a pixel format has more than 8 bits a component
// (yuv420p10le, p010le, yuv444p12le, gray16le...): an output in one can carry HDR and keeps
// the input's transfer, primaries and mastering metadata; every other output is SDR.
func HighBitDepth(pixFmt string) bool {
	if strings.HasPrefix(pixFmt, "nv") { // nv12, nv16, nv24: 8-bit, named by their layout
		return false
	}
	p := strings.TrimSuffix(strings.TrimSuffix(pixFmt, "le"), "be")
	for _, d := range []string{"10", "12", "14", "16"} {
		if strings.HasSuffix(p, d) {
			return true
		}
	}
	return false
}

// toneMapFilters convert frames of colour c to BT.709 SDR, before the final format filter
// (which picks the encoder's pixel format from zscale's output). zscale reads the frames in c
// as the probe described it (passed explicitly: a frame whose decoder left its colour unset
// would otherwise have no path to linear light), linearises them (100 nits reference white),
// converts the primaries in linear light, compresses the highlights (hable, no desaturation:
// colours keep their hue) and encodes BT.709. It runs after the scale, on the output's size:
// float RGB costs per pixel, and a downscaled frame has a fraction of them. A wide-gamut SDR
// stream (BT.2020 primaries, SDR transfer) is converted without the tone curve.
func toneMapFilters(c *Colour) []string {
	in := "zscale=tin=" + c.Transfer + ":pin=" + c.Primaries + ":min=" + c.Matrix + ":rin=" + c.Range + ":t=linear:npl=100"
	f := []string{in, "format=gbrpf32le", "zscale=p=bt709"}
	if c.HDR() {
		f = append(f, "tonemap=tonemap=hable:desat=0")
	}
	return append(f, "zscale=t=bt709:m=bt709:r=tv")
}

// sdrTags tag a tone-mapped output BT.709 in its container and its bitstream (x264's and
// x265's VUI, libvpx's and SVT-AV1's colour config).
var sdrTags = []string{"-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"}

func (c *Colour) validate(f string) error {
	for _, v := range []struct {
		name, v string
		ok      []string
	}{
		{"Transfer", c.Transfer, colourTransfers}, {"Primaries", c.Primaries, colourPrimaries},
		{"Matrix", c.Matrix, colourMatrices}, {"Range", c.Range, colourRanges},
	} {
		if !slices.Contains(v.ok, v.v) {
			return specErr(f+"."+v.name, "want one of %s, got %q", strings.Join(v.ok, ", "), v.v)
		}
	}
	return nil
}

// sameColour reports whether two outputs convert (or keep) the input's colour alike.
func sameColour(a, b *Colour) bool { return a == b || a != nil && b != nil && *a == *b }
