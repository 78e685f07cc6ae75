package media_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/media"
)

// hdrClip is a clip as a phone records HDR: 10-bit, BT.2020, PQ (HDR10, HEVC) or HLG (here
// H.264 High 10, which encodes faster; the tags are what matters).
func hdrClip(t *testing.T, transfer string) string {
	t.Helper()
	c := testenv.Clip{Seconds: 1, Size: "320x240", Extra: []string{
		"-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020", "-color_trc", transfer, "-colorspace", "bt2020nc",
	}}
	if transfer == "smpte2084" {
		c.Codec = "libx265"
		c.Extra = append(c.Extra, "-x265-params", "log-level=error:hdr10=1:max-cll=1000,400:"+
			"master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)")
	}
	return testenv.MakeClip(t, c)
}

// colourOf is the output's video pixel format and colour tags, as ffprobe reads them.
func colourOf(t *testing.T, path string) string {
	t.Helper()
	return strings.TrimSpace(testenv.Probe(t, path, "stream=pix_fmt,color_transfer,color_primaries,color_space", "v:0"))
}

// TestHDRInputToneMapped: HDR10 and HLG inputs come out of SDR presets (h264, vp9) tone-mapped
// to 8-bit BT.709 and tagged so, and out of a 10-bit HEVC output still HDR, tags kept.
func TestHDRInputToneMapped(t *testing.T) {
	e := engine(t)
	for _, transfer := range []string{"smpte2084", "arib-std-b67"} {
		t.Run(transfer, func(t *testing.T) {
			_, res := reservation(t, e)
			dir := t.TempDir()
			out := func(name string) string { return filepath.Join(dir, name) }
			task := &media.Task{ID: "hdr", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + hdrClip(t, transfer), Outputs: []job.Output{
				{URL: "file://" + out("h264.mp4"), Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}},
				{URL: "file://" + out("vp9.webm"), Preset: "vp9-720p", Video: &job.Video{Preset: "realtime"}},
				{URL: "file://" + out("hdr.mp4"), Preset: "hevc-720p", Video: &job.Video{Preset: "ultrafast", PixFmt: "yuv420p10le", Profile: "main10"}},
			}}}
			if err := task.Job.Validate(e.Config().Presets); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Run(context.Background(), task); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"h264.mp4", "vp9.webm"} {
				if got, want := colourOf(t, out(name)), "yuv420p,bt709,bt709,bt709"; got != want {
					t.Errorf("%s: pix_fmt,colorspace,transfer,primaries %s, want %s (tone-mapped to BT.709)", name, got, want)
				}
			}
			if got, want := colourOf(t, out("hdr.mp4")), "yuv420p10le,bt2020nc,"+transfer+",bt2020"; got != want {
				t.Errorf("10-bit HEVC: %s, want %s (HDR kept)", got, want)
			}
		})
	}
}

// TestHDRMasteringMetadataKept: an HDR output of an HDR10 file with mastering display and
// content light metadata (the real-world corpus' AV1 sample) keeps both; its SDR output is
// tone-mapped. Skipped where the corpus is not checked out beside the repository.
func TestHDRMasteringMetadataKept(t *testing.T) {
	in, err := filepath.Abs("../../shared/media/realworld/mp4_sample_with_colr_mdcv_and_clli.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(in); err != nil {
		t.Skip("real-world corpus not found:", err)
	}
	e := engine(t)
	_, res := reservation(t, e)
	dir := t.TempDir()
	sdr, hdr := filepath.Join(dir, "sdr.mp4"), filepath.Join(dir, "hdr.mp4")
	task := &media.Task{ID: "mdcv", Attempt: 1, Buffers: res, Job: &job.Job{Input: "file://" + in, Outputs: []job.Output{
		{URL: "file://" + sdr, Preset: "h264-480p", Video: &job.Video{Preset: "ultrafast"}},
		{URL: "file://" + hdr, Preset: "hevc-720p", Video: &job.Video{Preset: "ultrafast", PixFmt: "yuv420p10le", Profile: "main10"}},
	}}}
	if _, err := e.Run(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if got := colourOf(t, sdr); !strings.HasPrefix(got, "yuv420p,bt709,bt709,bt709") {
		t.Errorf("SDR output: %s, want yuv420p tagged BT.709", got)
	}
	got := testenv.Probe(t, hdr, "stream=color_transfer:stream_side_data=side_data_type", "v:0")
	for _, want := range []string{"smpte2084", "Mastering display metadata", "Content light level metadata"} {
		if !strings.Contains(got, want) {
			t.Errorf("HDR output lacks %s: %q", want, got)
		}
	}
}
