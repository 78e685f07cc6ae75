package ffmpeg

import (
	"context"
	"errors"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const ebur128Log = `[Parsed_ebur128_0 @ 0x5648] Summary:

  Integrated loudness:
    I:         -21.8 LUFS
    Threshold: -31.8 LUFS

  Loudness range:
    LRA:         2.5 LU
    Threshold: -41.8 LUFS
    LRA low:   -22.8 LUFS
    LRA high:  -21.3 LUFS

  True peak:
    Peak:      -16.1 dBFS
`

func TestParseEBUR128(t *testing.T) {
	m, err := parseEBUR128("Input #0, lavfi\n" + ebur128Log)
	if err != nil {
		t.Fatal(err)
	}
	if m != (LoudnessMeasure{I: -21.8, Thresh: -31.8, LRA: 2.5, TP: -16.1}) {
		t.Errorf("parsed %+v", m)
	}
	silent, err := parseEBUR128(strings.NewReplacer("-21.8 LUFS", "-70.0 LUFS", "-16.1 dBFS", "-inf dBFS").Replace(ebur128Log))
	if err != nil || !silent.Silent || silent.TP != -99 {
		t.Errorf("silence: %+v, %v", silent, err)
	}
	if _, err := parseEBUR128("Summary:\n  Integrated loudness:\n    I: -20 LUFS\n"); err == nil {
		t.Error("a summary without every figure parsed")
	}
	if got := loudnormFilter(&Loudness{Target: -16, TruePeak: -1.5, Measured: &silent}); got != "anull" {
		t.Errorf("silence is normalised: %s", got)
	}
}

func TestHDRSideData(t *testing.T) {
	md, cl := hdrSideData([]rawSideData{
		{Type: "Mastering display metadata", rawHDRSideData: rawHDRSideData{RedX: "34000/50000", RedY: "16000/50000", GreenX: "13250/50000",
			GreenY: "34500/50000", BlueX: "7500/50000", BlueY: "3000/50000", WhiteX: "15635/50000", WhiteY: "16450/50000",
			MinLum: "1/10000", MaxLum: "10000000/10000"}},
		{Type: "Content light level metadata", rawHDRSideData: rawHDRSideData{MaxContent: 1000, MaxAverage: 400}},
	})
	if md == nil || md.x265() != "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)" || cl == nil || *cl != (ContentLight{1000, 400}) {
		t.Fatalf("mastering %+v, light %+v", md, cl)
	}
	// Other units are converted; junk is left out rather than passed to x265.
	md, _ = hdrSideData([]rawSideData{{Type: "Mastering display metadata", rawHDRSideData: rawHDRSideData{RedX: "0.68/1", RedY: "x"}}})
	if md != nil {
		t.Errorf("junk mastering display read as %+v", md)
	}
}

// TestFeatureSpecValidate: what the plan or the engine must fill in is refused when missing.
func TestFeatureSpecValidate(t *testing.T) {
	base := func() Output {
		return Output{Container: "mp4", Video: &Video{Codec: "libx264", PixFmt: "yuv420p"}, Audio: &Audio{Codec: "aac"}}
	}
	for name, edit := range map[string]func(*Output){
		"unmeasured loudness": func(o *Output) { o.Audio.Loudness = &Loudness{Target: -16, TruePeak: -1.5} },
		"overlay not spooled": func(o *Output) {
			o.Video.Overlay = &Overlay{Format: "png_pipe", Width: 100, Position: "center", Opacity: 1}
		},
		"overlay demuxer": func(o *Output) {
			o.Video.Overlay = &Overlay{Path: "/l.png", Format: "image2", Width: 100, Position: "center", Opacity: 1}
		},
		"HDR on 8-bit H.264": func(o *Output) { o.Video.HDR = &HDR{Colour: Colour{"smpte2084", "bt2020", "bt2020nc", "tv"}} },
		"negative start":     func(o *Output) { o.Start = -1 },
	} {
		o := base()
		edit(&o)
		if err := o.Validate(); !errors.Is(err, ErrSpec) {
			t.Errorf("%s: %v, want a spec error", name, err)
		}
	}
}

// TestMeasureLoudness measures generated tones with ffmpeg: a full-scale-ish sine and one 10 dB
// under it differ by 10 LU.
func TestMeasureLoudness(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var got []LoudnessMeasure
	for _, vol := range []string{"0dB", "-10dB"} {
		path := filepath.Join(dir, vol+".wav")
		out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000:duration=4,volume="+vol, path).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		m, err := r.MeasureLoudness(context.Background(), path, AudioStream(0, 0), 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if d := got[0].I - got[1].I; math.Abs(d-10) > 0.2 || got[0].Silent {
		t.Errorf("measured %+v: want 10 LU apart", got)
	}
	if _, err := r.MeasureLoudness(context.Background(), filepath.Join(dir, "0dB.wav"), "0:a:0;rm", 0, 0); !errors.Is(err, ErrSpec) {
		t.Errorf("a stream specifier that is not one: %v", err)
	}
}
