// Package thumbs turns the image output of an ffmpeg run (ffmpeg.Images: an MJPEG stream, the
// JPEG files one after another on one pipe) into thumbnails: Splitter cuts the stream into its
// images as it arrives, Times and Slots give the planned time of each image and the span of
// the timeline it stands for, and WriteVTT writes the WebVTT index of a sprite sheet that video
// players (video.js, Shaka, JW Player, hls.js-based ones) show as seek-bar previews.
//
// The package is pure Go: it neither runs ffmpeg nor decodes images.
package thumbs

import "time"

// MaxImages bounds a plan's images; it is ffmpeg.MaxImages.
const MaxImages = 1000

// Times returns the planned time of each image of a frames or sprite output with these
// ffmpeg.Images fields (Count, Interval, Duration), as ffmpeg selects them: image i is the
// first frame at or after Times[i] (not already taken by image i-1).
//
// With count > 0 and a known duration the images are spread evenly, each in the middle of its
// slot: (i+0.5)*duration/count. Otherwise there is one every interval from 0: count of them,
// or as many as start before duration, or nil when that is unbounded (no count, no duration)
// or there is no interval. Plans are capped at MaxImages.
func Times(count int, interval, duration time.Duration) []time.Duration {
	return plan(count, interval, duration, false)
}

// Slots returns the start of the part of the timeline each image stands for: i*duration/count
// when spread, i*interval otherwise; the last slot ends at the duration. A sprite's WebVTT cues
// span the slots (Sprite.Times), so hovering anywhere on the seek bar finds the image taken
// in that part of the video.
func Slots(count int, interval, duration time.Duration) []time.Duration {
	return plan(count, interval, duration, true)
}

func plan(count int, interval, duration time.Duration, slots bool) []time.Duration {
	if count < 0 || interval < 0 || duration < 0 {
		return nil
	}
	if count > 0 && duration > 0 {
		count = min(count, MaxImages)
		t := make([]time.Duration, count)
		for i := range t {
			k := int64(2*i + 1) // the middle of slot i: (2i+1)/2n of the duration
			if slots {
				k = int64(2 * i) // its start
			}
			t[i] = mulDiv(duration, k, int64(2*count))
		}
		return t
	}
	if interval == 0 {
		return nil
	}
	n := count
	if n == 0 {
		if duration == 0 {
			return nil
		}
		n = int((duration + interval - 1) / interval)
	}
	n = min(n, MaxImages)
	t := make([]time.Duration, n)
	for i := range t {
		t[i] = time.Duration(i) * interval
	}
	return t
}

// mulDiv is d*k/n rounded down, without overflow for k <= n <= 2*MaxImages.
func mulDiv(d time.Duration, k, n int64) time.Duration {
	q, r := int64(d)/n, int64(d)%n
	return time.Duration(q*k + r*k/n)
}
