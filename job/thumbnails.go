package job

import (
	"fmt"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
)

// ContainerJPEG is the container of still-image outputs (Thumbnails).
const ContainerJPEG = "jpg"

// Thumbnails asks for still images of the video instead of an encode: the output's Container
// is "jpg". They come from the same decode as the job's other outputs.
//
//   - poster: one image, the frame at At seconds (default: 10% into the input); the output's
//     URL is the JPEG itself.
//   - frames: Count images spread evenly (or one every Interval seconds); the URL is a prefix
//     (a directory) that receives thumb-0001.jpg, thumb-0002.jpg, ...
//   - sprite: the same frames tiled Columns wide into sprite.jpg, with sprite.vtt, a WebVTT
//     index whose cues point at each tile (sprite.jpg#xywh=x,y,w,h) for scrubbing previews; the
//     URL is a prefix, and the output's result is sprite.vtt.
//
// Width x Height is a bounding box (aspect kept, never upscaled).
type Thumbnails struct {
	Mode     string   `json:"mode" yaml:"mode"`
	At       *float64 `json:"at,omitempty" yaml:"at"`
	Count    int      `json:"count,omitempty" yaml:"count"`
	Interval float64  `json:"interval,omitempty" yaml:"interval"`
	Width    int      `json:"width,omitempty" yaml:"width"`
	Height   int      `json:"height,omitempty" yaml:"height"`
	Columns  int      `json:"columns,omitempty" yaml:"columns"`
	Quality  int      `json:"quality,omitempty" yaml:"quality"`
}

// Names of the files of frames and sprite outputs, under the output's prefix.
const (
	SpriteImage = "sprite.jpg"
	SpriteIndex = "sprite.vtt"
)

// ThumbName is the name of image n (1-based) of a frames output.
func ThumbName(n int) string { return fmt.Sprintf("thumb-%04d.jpg", n) }

// overlayThumbnails lets an output's thumbnails settings override its preset's.
func overlayThumbnails(base, over *Thumbnails) *Thumbnails {
	if base == nil && over == nil {
		return nil
	}
	var t Thumbnails
	if base != nil {
		t = *base
	}
	if over != nil {
		if over.Mode != "" {
			t.Mode = over.Mode
		}
		if over.At != nil {
			t.At = over.At
		}
		if over.Count != 0 {
			t.Count, t.Interval = over.Count, 0
		}
		if over.Interval != 0 {
			t.Interval, t.Count = over.Interval, 0
		}
		if over.Width != 0 {
			t.Width = over.Width
		}
		if over.Height != 0 {
			t.Height = over.Height
		}
		if over.Columns != 0 {
			t.Columns = over.Columns
		}
		if over.Quality != 0 {
			t.Quality = over.Quality
		}
	}
	return &t
}

// images is the ffmpeg output for the thumbnails, given the input's duration (0: unknown) and
// frame rate (0: unknown).
func (t *Thumbnails) images(d time.Duration, fps float64) *ffmpeg.Images {
	im := &ffmpeg.Images{
		Mode: t.Mode, Count: t.Count, Interval: time.Duration(t.Interval * float64(time.Second)),
		Duration: d, Width: t.Width, Height: t.Height, Columns: t.Columns, Quality: t.Quality,
	}
	if t.Mode == ffmpeg.ImagesPoster {
		switch {
		case t.At != nil:
			im.At = time.Duration(*t.At * float64(time.Second))
		case d > 0:
			im.At = d / 10 // past a fade-in or a title card, usually
		}
	}
	if t.Mode == ffmpeg.ImagesSprite && t.Columns == 0 {
		im.Columns = 10
	}
	// Fewer than two frames a slot: the middle of a slot may come after its only frame (or
	// after the last frame of all), so images are taken from the slots' starts.
	if t.Count > 0 && d > 0 && (fps <= 0 || d.Seconds()*fps < 2*float64(t.Count)) {
		im.SlotStarts = true
	}
	return im
}

// checkThumbnails validates the settings as far as they do not depend on the input: the
// ffmpeg package's own checks (mode, count or interval, box, quality, grid), with a duration
// standing in for the probe's, and the job's bounds on times.
func checkThumbnails(t *Thumbnails, field string) error {
	if t.At != nil && (*t.At < 0 || *t.At > MaxTimeout.Seconds()) {
		return &FieldError{field + ".thumbnails.at", "must be a time in seconds within the input"}
	}
	if t.Interval < 0 || t.Interval > 3600 {
		return &FieldError{field + ".thumbnails.interval", "must be 0 to 3600 seconds"}
	}
	out := ffmpeg.Output{Images: t.images(time.Hour, 25)}
	return specFieldError(out.Validate(), field, field)
}

func resolveImages(container string, t *Thumbnails, field string) (ResolvedOutput, error) {
	if container != ContainerJPEG {
		return ResolvedOutput{}, &FieldError{field + ".container", fmt.Sprintf("thumbnails are jpg, not %q", container)}
	}
	if t == nil {
		return ResolvedOutput{}, &FieldError{field + ".thumbnails", "a jpg output needs thumbnails settings"}
	}
	if err := checkThumbnails(t, field); err != nil {
		return ResolvedOutput{}, err
	}
	return ResolvedOutput{Container: ContainerJPEG, Thumbnails: t}, nil
}
