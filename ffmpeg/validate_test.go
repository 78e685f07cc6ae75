package ffmpeg

import (
	"errors"
	"slices"
	"testing"
)

// TestOutputValidate: Output.Validate is the check Spec.Args makes of each output, with the
// field named relative to the output, so job validation can name the job's field.
func TestOutputValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		field string
		out   Output
	}{
		{"Video.Preset", Output{Container: "mp4", Video: &Video{Codec: "libx264", Preset: "turbo"}}},
		{"Audio.SampleRate", Output{Container: "m4a", Audio: &Audio{Codec: "aac", SampleRate: 100}}},
		{"Container", Output{Container: "avi", Audio: &Audio{Codec: "aac"}}},
		{"Segment", Output{Container: "mp4", Audio: &Audio{Codec: "aac"}, Segment: 1}},
		{"", Output{Container: "mp4"}},
		{"Images.Mode", Output{Images: &Images{Mode: "gif"}}},
	} {
		var se *SpecError
		if err := tt.out.Validate(); !errors.As(err, &se) || se.Field != tt.field {
			t.Errorf("Validate(%+v) = %v; want a SpecError on %q", tt.out, err, tt.field)
		}
		want := "Outputs[0]"
		if tt.field != "" {
			want += "." + tt.field
		}
		if _, err := (Spec{Outputs: []Output{tt.out}}).Args(); !errors.As(err, &se) || se.Field != want {
			t.Errorf("Args: %v; want a SpecError on %s", err, want)
		}
	}
	if err := (Output{Container: "webm", Video: &Video{Codec: "libvpx-vp9", Preset: "good"}}).Validate(); err != nil {
		t.Errorf("valid output: %v", err)
	}
}

// TestContainers: every container listed is one an output can name, and carries what its
// table says.
func TestContainers(t *testing.T) {
	t.Parallel()
	names := Containers()
	if !slices.IsSorted(names) || len(names) != len(containerArgs) {
		t.Fatalf("Containers() = %q, want the %d muxers, sorted", names, len(containerArgs))
	}
	for _, c := range names {
		if _, ok := containerArgs[c]; !ok {
			t.Errorf("container %q has no muxer arguments", c)
		}
	}
	if !CarriesVideo("webm", "libvpx-vp9") || CarriesVideo("webm", "libx264") || CarriesVideo("m4a", "copy") || !CarriesAudio("m4a", "copy") || CarriesAudio("ogg", "aac") {
		t.Error("CarriesVideo/CarriesAudio disagree with the container tables")
	}
}
