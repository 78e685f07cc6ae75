package media

import "github.com/transcoder/transcoder/ffmpeg"

// undescribed reports whether a probe that succeeded still lacks a video stream's frame size:
// ffprobe read the head of a capture that starts mid-GOP, and the stream's first keyframe (the
// first frame that can be decoded, and the first with the sequence headers) comes later. More
// of the input describes it; frames before that keyframe are skipped by the decoder, as any
// player does.
func undescribed(p *ffmpeg.ProbeResult) bool {
	if p == nil {
		return false
	}
	for _, s := range p.Streams {
		if s.Type == "video" && !s.AttachedPic && (s.Width == 0 || s.Height == 0) {
			return true
		}
	}
	return false
}
