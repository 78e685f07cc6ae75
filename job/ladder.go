package job

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rung is one video rendition of an adaptive-bitrate ladder. Its Video's width and height are a
// bounding box, as for any output.
type Rung struct {
	Name  string `json:"name" yaml:"name"`
	Video *Video `json:"video" yaml:"video"`
}

// Streaming containers: an output of one of these is a ladder written under a prefix (a
// directory, or a bucket prefix) as CMAF segments with playlists.
const (
	ContainerHLS  = "hls"  // master.m3u8, NAME/index.m3u8, NAME/init.mp4, NAME/seg-00001.m4s
	ContainerDASH = "dash" // manifest.mpd over the same segment layout
)

// DefaultSegment is the segment length of a ladder whose preset sets none.
const DefaultSegment = 4 * time.Second

// IsLadder reports whether the container is a streaming ladder (hls or dash).
func IsLadder(container string) bool { return container == ContainerHLS || container == ContainerDASH }

var (
	// ladderVideo and ladderAudio are the codecs each streaming format plays in fMP4 segments:
	// Apple's HLS takes H.264 and HEVC (hvc1) with AAC; DASH players also take VP9, AV1, Opus.
	ladderVideo = map[string][]string{ContainerHLS: {"h264", "hevc"}, ContainerDASH: {"h264", "hevc", "vp9", "av1"}}
	ladderAudio = map[string][]string{ContainerHLS: {"aac"}, ContainerDASH: {"aac", "opus"}}
)

const maxRungs = 8

// resolveLadder checks a ladder's rungs and audio for its streaming container.
func resolveLadder(container string, rungs []Rung, a *Audio, seg time.Duration, field string) (ResolvedOutput, error) {
	if len(rungs) == 0 && a == nil {
		return ResolvedOutput{}, &FieldError{field, container + " needs a ladder (video rungs) or audio"}
	}
	if len(rungs) > maxRungs {
		return ResolvedOutput{}, &FieldError{field + ".ladder", fmt.Sprintf("at most %d rungs", maxRungs)}
	}
	names := map[string]bool{"audio": true}
	for i, r := range rungs {
		f := fmt.Sprintf("%s.ladder[%d]", field, i)
		if !ValidID(r.Name) || len(r.Name) > 32 || names[r.Name] {
			return ResolvedOutput{}, &FieldError{f + ".name", fmt.Sprintf("%q: each rung needs its own name of letters, digits, '-' and '_' (not \"audio\")", r.Name)}
		}
		names[r.Name] = true
		if r.Video == nil || !slices.Contains(ladderVideo[container], r.Video.Codec) {
			codec := ""
			if r.Video != nil {
				codec = r.Video.Codec
			}
			return ResolvedOutput{}, &FieldError{f + ".video.codec", fmt.Sprintf("%q: %s rungs take %s", codec, container, strings.Join(ladderVideo[container], ", "))}
		}
		if r.Video.Width <= 0 && r.Video.Height <= 0 {
			return ResolvedOutput{}, &FieldError{f + ".video", "a rung needs a width or height (its bounding box)"}
		}
		// The rest of the checks are those of any video output, as a CMAF stream.
		if err := checkEncode("mp4", r.Video, nil, seg, field, f); err != nil {
			return ResolvedOutput{}, err
		}
	}
	if a != nil {
		if !slices.Contains(ladderAudio[container], a.Codec) {
			return ResolvedOutput{}, &FieldError{field + ".audio.codec", fmt.Sprintf("%q: %s audio takes %s", a.Codec, container, strings.Join(ladderAudio[container], ", "))}
		}
		if err := checkEncode("mp4", nil, a, seg, field, field); err != nil {
			return ResolvedOutput{}, err
		}
	}
	return ResolvedOutput{Container: container, Ladder: rungs, Audio: a, Segment: seg}, nil
}

// maxSpecOutputs is the most ffmpeg outputs the resolved output makes: one per rung and one
// for the audio of a ladder (fewer for an input that is small or lacks a stream), else one.
func (r ResolvedOutput) maxSpecOutputs() int {
	if !IsLadder(r.Container) {
		return 1
	}
	n := len(r.Ladder)
	if r.Audio != nil {
		n++
	}
	return n
}

// KeptRungs is the part of a ladder worth encoding for an input of w x h (upright, square
// pixels). Rungs are never upscaled, so several rungs can come out at the same size (the
// input's); of those only the one with the smallest box is kept: its bitrate is meant for that
// size. Every rung of a larger input is kept; an input smaller than every rung keeps the
// smallest rung, at the input's own size. w == 0 (no video) keeps none. Order is kept.
func KeptRungs(rungs []Rung, w, h int) []Rung {
	if w <= 0 || h <= 0 {
		return nil
	}
	type size struct{ w, h int }
	best := map[size]int{} // fitted size -> index of the rung with the smallest box
	for i, r := range rungs {
		fw, fh := FitBox(w, h, r.Video.Width, r.Video.Height)
		k := size{fw, fh}
		if j, ok := best[k]; !ok || area(r) < area(rungs[j]) {
			best[k] = i
		}
	}
	var kept []Rung
	for i, r := range rungs {
		fw, fh := FitBox(w, h, r.Video.Width, r.Video.Height)
		if best[size{fw, fh}] == i {
			kept = append(kept, r)
		}
	}
	return kept
}

func area(r Rung) int {
	const unbounded = 1 << 15
	w, h := r.Video.Width, r.Video.Height
	if w == 0 {
		w = unbounded
	}
	if h == 0 {
		h = unbounded
	}
	return w * h
}
