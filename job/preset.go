package job

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"
)

// Preset is a named recipe for one output: container, video and audio. A nil Video means an
// audio-only output; a nil Audio means a silent one.
//
// A preset whose container is hls or dash is an adaptive-bitrate ladder: Ladder lists its video
// renditions (largest first), Audio its one audio rendition, Segment the segment length.
type Preset struct {
	Description string  `yaml:"description"`
	Container   string  `yaml:"container"`
	Video       *Video  `yaml:"video"`
	Audio       *Audio  `yaml:"audio"`
	Ladder      []Rung  `yaml:"ladder"`
	Segment     float64 `yaml:"segment"` // seconds; ladders only; default 4
	// Thumbnails makes a still-image preset (container jpg).
	Thumbnails *Thumbnails `yaml:"thumbnails"`
}

// segment is the preset's segment length, or the default.
func (p Preset) segment() time.Duration {
	if p.Segment == 0 {
		return DefaultSegment
	}
	return time.Duration(p.Segment * float64(time.Second))
}

// check validates the preset as a whole.
func (p Preset) check(field string) error {
	if IsLadder(p.Container) {
		if p.Video != nil {
			return &FieldError{field + ".video", "a ladder's video is its rungs (ladder:)"}
		}
		_, err := resolveLadder(p.Container, p.Ladder, p.Audio, p.segment(), field)
		return err
	}
	if p.Container == ContainerJPEG || p.Thumbnails != nil {
		_, err := resolveImages(p.Container, p.Thumbnails, field)
		return err
	}
	if len(p.Ladder) > 0 || p.Segment != 0 {
		return &FieldError{field + ".ladder", "ladder and segment are for hls and dash presets"}
	}
	_, err := resolved(p.Container, p.Video, p.Audio, field)
	return err
}

// Presets maps preset names to presets.
type Presets map[string]Preset

// ParsePresets reads a presets YAML document (see configs/presets.yaml) and checks every preset.
func ParsePresets(data []byte) (Presets, error) {
	var doc struct {
		Presets Presets `yaml:"presets"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("job: presets: %w", err)
	}
	if len(doc.Presets) == 0 {
		return nil, fmt.Errorf("job: presets: no presets defined")
	}
	for name, p := range doc.Presets {
		if !ValidID(name) {
			return nil, fmt.Errorf("job: presets: %q: names are letters, digits, '-' and '_'", name)
		}
		if err := p.check("presets." + name); err != nil {
			return nil, err
		}
	}
	return doc.Presets, nil
}

// Names returns the preset names in order.
func (p Presets) Names() []string {
	names := make([]string, 0, len(p))
	for n := range p {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Merge returns a copy of p with the presets of other added; other wins on equal names.
func (p Presets) Merge(other Presets) Presets {
	out := make(Presets, len(p)+len(other))
	for k, v := range p {
		out[k] = v
	}
	for k, v := range other {
		out[k] = v
	}
	return out
}

// Summary is one line saying what the preset produces, for `transcoder presets`.
func (p Preset) Summary() string {
	s := p.Container
	if t := p.Thumbnails; t != nil {
		switch t.Mode {
		case "poster":
			return fmt.Sprintf("jpg poster, up to %dx%d, 10%% into the input unless at: is set", t.Width, t.Height)
		case "frames":
			return fmt.Sprintf("jpg, %d images spread evenly, up to %dx%d, as thumb-0001.jpg... under a prefix", t.Count, t.Width, t.Height)
		default:
			return fmt.Sprintf("jpg sprite sheet of %d tiles of up to %dx%d, %d per row, with a WebVTT index (sprite.jpg, sprite.vtt under a prefix)", t.Count, t.Width, t.Height, t.Columns)
		}
	}
	if IsLadder(p.Container) {
		s += fmt.Sprintf(" ladder, %s segments (CMAF):", p.segment())
		for i, r := range p.Ladder {
			if i > 0 {
				s += ","
			}
			s += fmt.Sprintf(" %s %s %dx%d", r.Name, r.Video.Codec, r.Video.Width, r.Video.Height)
			if r.Video.Bitrate != "" {
				s += " " + r.Video.Bitrate
			}
		}
		if p.Audio != nil {
			s += fmt.Sprintf("; audio %s %s", p.Audio.Codec, p.Audio.Bitrate)
		}
		return s + "; rungs above the input's size are skipped"
	}
	if p.Video != nil && p.Video.Codec == "copy" {
		s += ", video copied"
	} else if p.Video != nil {
		s += fmt.Sprintf(", %s", p.Video.Codec)
		if p.Video.Width > 0 || p.Video.Height > 0 {
			s += fmt.Sprintf(" up to %dx%d", p.Video.Width, p.Video.Height)
		}
		if p.Video.CRF > 0 {
			s += fmt.Sprintf(" crf %d", p.Video.CRF)
		}
		if p.Video.Bitrate != "" {
			s += " " + p.Video.Bitrate
		}
	}
	if p.Audio != nil && p.Audio.Codec == "copy" {
		s += ", audio copied"
	} else if p.Audio != nil {
		s += fmt.Sprintf(", %s", p.Audio.Codec)
		if p.Audio.Bitrate != "" {
			s += " " + p.Audio.Bitrate
		}
		if p.Audio.AllTracks {
			s += " (all tracks)"
		}
	}
	return s
}
