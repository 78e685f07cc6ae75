// Package job defines the transcode job, its events and states (the JSON wire format, version 1),
// the presets that jobs name, validation with errors that name the offending field, and the plan
// that turns a job plus the probe of its input into typed ffmpeg specs. It does no I/O.
package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Version is the job wire-format version this package reads and writes.
const Version = 1

// Priority orders queued jobs. The empty priority means PriorityNormal.
type Priority string

// Priorities, as they appear in the job subject transcode.jobs.<priority>.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Job is one transcode request: one input, one or more outputs.
type Job struct {
	Version  int               `json:"version,omitempty"`
	ID       string            `json:"id,omitempty"`
	Input    string            `json:"input"`
	Preset   string            `json:"preset,omitempty"`
	Outputs  []Output          `json:"outputs"`
	Timeout  Duration          `json:"timeout,omitempty"`
	Priority Priority          `json:"priority,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Created is set by the submitter; informational.
	Created time.Time `json:"created,omitzero"`
	// Program names the programme of a multi-programme input (a broadcast MPEG-TS multiplex)
	// every output is made from: its program_id, as ffprobe -show_programs lists it. 0 means
	// the first programme with video (else with audio).
	Program int `json:"program,omitempty"`
	// Split says whether the job may be cut into chunks that many workers encode at once
	// (nil: auto).
	Split *Split `json:"split,omitempty"`

	// Job fields of issue 14, part 2 (jobfeat): a range of the input (features.go).
	Clip *Clip `json:"clip,omitempty"`
}

// Split modes.
const (
	SplitAuto = "auto" // split inputs longer than the worker's split_min_duration when more than one worker is alive
	SplitOn   = "on"   // split; an input that cannot be split fails as invalid_input
	SplitOff  = "off"  // one worker runs the whole job
)

// DefaultChunk is a split job's chunk duration when the job names none.
const DefaultChunk = 30 * time.Second

// Split asks for a job to be cut into chunks (see README.md, "Split jobs").
type Split struct {
	Mode  string   `json:"mode,omitempty"`  // on | off | auto (default auto)
	Chunk Duration `json:"chunk,omitempty"` // about how long each chunk is (default 30s)
}

// SplitMode is the job's split mode, auto when unset.
func (j *Job) SplitMode() string {
	if j.Split == nil || j.Split.Mode == "" {
		return SplitAuto
	}
	return j.Split.Mode
}

// ChunkDuration is the job's chunk duration, DefaultChunk when unset.
func (j *Job) ChunkDuration() time.Duration {
	if j.Split == nil || j.Split.Chunk == 0 {
		return DefaultChunk
	}
	return time.Duration(j.Split.Chunk)
}

// Output is one rendition the job asks for. Fields left empty come from the output's preset,
// or else the job's preset; but a video codec other than the preset's takes none of the
// preset's speed preset and profile, which are each encoder's own.
type Output struct {
	URL       string `json:"url"`
	Preset    string `json:"preset,omitempty"`
	Container string `json:"container,omitempty"`
	Video     *Video `json:"video,omitempty"`
	Audio     *Audio `json:"audio,omitempty"`
	// NoVideo and NoAudio drop a stream the preset would otherwise produce.
	NoVideo bool `json:"no_video,omitempty"`
	NoAudio bool `json:"no_audio,omitempty"`
	// Faststart writes an mp4 or m4a with its index at the front, for progressive download:
	// the worker has ffmpeg write it to a spool file and publishes it when complete. Without
	// it, mp4 is fragmented and streamed out as it is encoded.
	Faststart bool `json:"faststart,omitempty"`
	// Thumbnails makes the output still images (container jpg); see Thumbnails.
	Thumbnails *Thumbnails `json:"thumbnails,omitempty"`

	// Tracks (issue 14; tracks.go): which audio and subtitle tracks the output keeps, sidecar
	// subtitle files it adds, and a subtitle track it burns into the picture.
	AudioTracks   *TrackSelect `json:"audio_tracks,omitempty"`   // "all" | "default" (nil) | ["eng", ...]
	Subtitles     *TrackSelect `json:"subtitles,omitempty"`      // "all" (nil, where the container carries text subtitles) | "none" | ["eng", ...]
	SubtitlesIn   []SubtitleIn `json:"subtitles_in,omitempty"`   // [{"url": URL, "language": "fra"}]
	BurnSubtitles *TrackRef    `json:"burn_subtitles,omitempty"` // "eng" or a stream index

	// Output fields of issue 14, part 2 (jobfeat): loudness normalisation and an image
	// overlay (features.go).
	Loudness *Loudness `json:"loudness,omitempty"`
	Overlay  *Overlay  `json:"overlay,omitempty"`
}

// Video describes a video encode. Width and Height are a bounding box: the output keeps the
// input's aspect ratio, fits in the box (turned to match portrait inputs), is never upscaled,
// and has even dimensions. FPS 0 keeps the input's frame timing (variable frame rate stays
// variable); FPS > 0 makes the output constant-rate at FPS.
type Video struct {
	Codec   string  `json:"codec,omitempty" yaml:"codec"`
	Width   int     `json:"width,omitempty" yaml:"width"`
	Height  int     `json:"height,omitempty" yaml:"height"`
	CRF     int     `json:"crf,omitempty" yaml:"crf"`
	Preset  string  `json:"preset,omitempty" yaml:"preset"`
	Bitrate string  `json:"bitrate,omitempty" yaml:"bitrate"`
	MaxRate string  `json:"maxrate,omitempty" yaml:"maxrate"`
	BufSize string  `json:"bufsize,omitempty" yaml:"bufsize"`
	FPS     float64 `json:"fps,omitempty" yaml:"fps"`
	GOP     int     `json:"gop,omitempty" yaml:"gop"`
	Profile string  `json:"profile,omitempty" yaml:"profile"`
	PixFmt  string  `json:"pix_fmt,omitempty" yaml:"pix_fmt"`
}

// Audio describes an audio encode. Channels 0 means stereo (a multichannel input is downmixed);
// set it to keep more. An input with several audio tracks gives its default one, or those
// Output.AudioTracks selects (each encoded the same way); AllTracks is the older spelling of
// audio_tracks "all".
type Audio struct {
	Codec      string `json:"codec,omitempty" yaml:"codec"`
	Bitrate    string `json:"bitrate,omitempty" yaml:"bitrate"`
	Channels   int    `json:"channels,omitempty" yaml:"channels"`
	SampleRate int    `json:"sample_rate,omitempty" yaml:"sample_rate"`
	AllTracks  bool   `json:"all_tracks,omitempty" yaml:"all_tracks"`
}

// Duration is a time.Duration that reads and writes as a Go duration string ("30m", "90s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a duration string, or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration must be a string like \"30m\" or a number of seconds")
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Decode parses a job from its JSON wire format. Unknown fields are rejected so that a typo
// ("ouputs") is an error rather than a silently ignored option.
func Decode(data []byte) (*Job, error) {
	var j Job
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, &FieldError{Field: "json", Msg: err.Error()}
	}
	if dec.More() {
		return nil, &FieldError{Field: "json", Msg: "trailing data after the job object"}
	}
	return &j, nil
}
