package ffmpeg

import (
	"strconv"
	"strings"
	"time"
)

// Images modes.
const (
	ImagesPoster = "poster" // one image, the first frame at or after At
	ImagesFrames = "frames" // Count images spread over Duration, or one every Interval
	ImagesSprite = "sprite" // the frames' images tiled Columns x Rows into one image
)

// Limits of an Images output.
const (
	MaxImages        = 1000  // images (or sprite tiles) of one output
	MaxImageSide     = 4096  // Images.Width and Images.Height
	MaxSpriteColumns = 100   // Images.Columns
	MaxSpriteSide    = 16384 // either side of a whole sprite sheet, in pixels
	DefaultQuality   = 4     // mjpeg -q:v when Images.Quality is 0
)

// Images is an output of still images as one MJPEG stream (image2pipe: the JPEG files one after
// another, nothing between them) on the output's pipe; the worker splits it into files (see
// package thumbs). It reads the same decoded frames as the run's other outputs, so thumbnails
// cost no second decode.
//
// Which frames: a poster is the first frame at or after At. Frames and sprites with Count and a
// known Duration take image i (0-based) from the first frame at or after (i+0.5)*Duration/Count
// not already taken, so the images sit in the middle of Count equal slots; otherwise image i is
// the first frame at or after i*Interval not already taken, up to Count images (or as many as
// Duration holds, or MaxImages). A frame is never used twice: where frames are sparser than the
// slots (a slideshow, a clip shorter than planned) the following images catch up on the next
// frames, and a clip whose video ends early gives fewer images (Expected is then an upper
// bound; a sprite is still written, its missing tiles black).
type Images struct {
	Mode string // ImagesPoster, ImagesFrames or ImagesSprite
	// At is the poster's time. When Duration is known, an At in the input's last second (or
	// past its end) moves back to one second before the end (half the duration for clips under
	// two seconds), where a frame surely is; when it is unknown, an At past the end gives no
	// image.
	At time.Duration
	// Count is the number of images (frames) or tiles (sprite), 1..MaxImages; 0 = one every
	// Interval.
	Count int
	// Interval takes one image every Interval from 0; used when Count is 0 or Duration unknown.
	Interval time.Duration
	// Duration is the input's duration, from the probe; 0 = unknown.
	Duration time.Duration
	// Width x Height is a bounding box, as Video.Fit: the frame is scaled in square pixels,
	// keeping its aspect, turned for portrait frames, never upscaled, to even sizes. 0 leaves
	// a side unbounded. A sprite needs both.
	Width, Height int
	// Columns x Rows is the sprite's grid; Rows 0 = as many rows as the tiles need.
	Columns, Rows int
	// Quality is mjpeg's -q:v, 2 (best) .. 31; 0 = DefaultQuality.
	Quality int
	// SlotStarts takes spread images from the start of their slots (i*Duration/Count) instead
	// of the middle: for inputs with about as few frames as images (a one-frame clip gives its
	// one frame, where the middle of the first slot would come after it).
	SlotStarts bool
}

// Frames returns how many frames the selection takes: 1 for a poster, the number of images or
// of sprite tiles otherwise; 0 when unbounded (frames every Interval of an input of unknown
// duration: up to MaxImages).
func (im *Images) Frames() int {
	if im.Mode == ImagesPoster {
		return 1
	}
	n := im.Count
	if n == 0 && im.Interval > 0 && im.Duration > 0 {
		// i*Interval < Duration
		n = int((im.Duration + im.Interval - 1) / im.Interval)
	}
	return min(n, MaxImages)
}

// Expected returns how many JPEG images the output's stream holds when every planned frame
// exists: 1 for a poster or a sprite, Frames() for frames (0 = unbounded, up to MaxImages).
func (im *Images) Expected() int {
	if im.Mode == ImagesFrames {
		return im.Frames()
	}
	return 1
}

// Grid returns a sprite's columns and rows (0, 0 for the other modes).
func (im *Images) Grid() (columns, rows int) {
	if im.Mode != ImagesSprite || im.Columns <= 0 {
		return 0, 0
	}
	rows = im.Rows
	if rows == 0 {
		rows = (im.Frames() + im.Columns - 1) / im.Columns
	}
	return im.Columns, rows
}

// spread reports whether the frames are spread over Duration (else one every Interval).
func (im *Images) spread() bool { return im.Count > 0 && im.Duration > 0 }

// posterAt is At, moved back from the input's end when Duration is known.
func (im *Images) posterAt() time.Duration {
	if im.Duration <= 0 {
		return im.At
	}
	return min(im.At, im.Duration-min(im.Duration/2, time.Second))
}

// selectExpr is the select filter's expression. selected_n is the number of frames selected
// before this one, so each comparison is against the next image's planned time: the first frame
// at or after it is taken, and a frame is taken at most once. Times are compared in whole
// microseconds (integers, exact in a double), so that rounding in selected_n*Interval cannot
// skip a frame that sits exactly on a planned time.
func (im *Images) selectExpr() string {
	const t = "round(t*1000000)"
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	if im.Mode == ImagesPoster {
		return "lt(selected_n,1)*gte(" + t + "," + us(im.posterAt()) + ")"
	}
	n := im.Frames()
	if n == 0 {
		n = MaxImages
	}
	ns := strconv.Itoa(n)
	if im.spread() && im.SlotStarts {
		// t >= selected_n*Duration/Count, as t*Count >= selected_n*Duration.
		return "lt(selected_n," + ns + ")*gte(" + t + "*" + ns + ",selected_n*" + us(im.Duration) + ")"
	}
	if im.spread() {
		// t >= (selected_n+0.5)*Duration/Count, as t*2*Count >= (2*selected_n+1)*Duration.
		return "lt(selected_n," + ns + ")*gte(" + t + "*" + strconv.Itoa(2*n) + ",(2*selected_n+1)*" + us(im.Duration) + ")"
	}
	return "lt(selected_n," + ns + ")*gte(" + t + ",selected_n*" + us(im.Interval) + ")"
}

// appendImages appends the output options of an Images output (validated).
func appendImages(a []string, im *Images, threads, program int) []string {
	w, h := fitExpr(im.Width, im.Height)
	filters := []string{
		"select='" + im.selectExpr() + "'",
		// Scaled after the selection: only the chosen frames pay for it. yuvj420p is the
		// full-range 4:2:0 mjpeg takes without -strict; swscale converts the range.
		"scale=w='" + w + "':h='" + h + "'", "setsar=1", "format=yuvj420p",
	}
	frames := 1
	switch im.Mode {
	case ImagesSprite:
		c, r := im.Grid()
		// nb_frames: the sheet is complete after Frames() tiles; at the end of the input
		// tile flushes a partial sheet, the missing tiles black.
		filters = append(filters, "tile="+strconv.Itoa(c)+"x"+strconv.Itoa(r)+":nb_frames="+strconv.Itoa(im.Frames()))
	case ImagesFrames:
		frames = im.Frames()
		if frames == 0 {
			frames = MaxImages
		}
	}
	q := im.Quality
	if q == 0 {
		q = DefaultQuality
	}
	a = append(a, "-map", videoStream(program), "-an", "-sn", "-dn",
		"-vf", strings.Join(filters, ","),
		// The selected frames keep their timestamps: no duplicates to fill the gaps.
		"-fps_mode", "passthrough",
		"-c:v", "mjpeg", "-q:v", strconv.Itoa(q))
	if threads > 0 {
		a = append(a, "-threads", strconv.Itoa(threads))
	}
	return append(a, "-frames:v", strconv.Itoa(frames), "-f", "image2pipe")
}

// appendImageCaps appends an Images output's -t and -fs, as appendOutput does for the others.
func appendImageCaps(a []string, o Output) []string {
	if o.Duration > 0 {
		a = append(a, "-t", strconv.FormatFloat(o.Duration.Seconds(), 'f', -1, 64))
	}
	if o.MaxBytes > 0 {
		a = append(a, "-fs", strconv.FormatInt(o.MaxBytes, 10))
	}
	return a
}

// validateImages checks an output with Images set.
func (o Output) validateImages(field string) error {
	if o.Container != "" || o.Video != nil || o.Audio != nil {
		return specErr(field, "an Images output has no Container, Video or Audio")
	}
	if o.Duration < 0 {
		return specErr(field+".Duration", "must be >= 0, got %v", o.Duration)
	}
	if o.MaxBytes < 0 {
		return specErr(field+".MaxBytes", "must be >= 0, got %d", o.MaxBytes)
	}
	if o.Segment != 0 {
		return specErr(field+".Segment", "an Images output is not segmented")
	}
	return o.Images.validate(field + ".Images")
}

func (im *Images) validate(f string) error {
	switch im.Mode {
	case ImagesPoster, ImagesFrames, ImagesSprite:
	default:
		return specErr(f+".Mode", "want poster, frames or sprite, got %q", im.Mode)
	}
	if im.Duration < 0 {
		return specErr(f+".Duration", "must be >= 0, got %v", im.Duration)
	}
	for _, d := range []struct {
		name string
		v    int
	}{{"Width", im.Width}, {"Height", im.Height}} {
		if d.v < 0 || d.v > MaxImageSide {
			return specErr(f+"."+d.name, "must be 0..%d, got %d", MaxImageSide, d.v)
		}
	}
	if im.Quality != 0 && (im.Quality < 2 || im.Quality > 31) {
		return specErr(f+".Quality", "must be 0 (default %d) or 2..31, got %d", DefaultQuality, im.Quality)
	}
	if im.Mode == ImagesPoster {
		if im.At < 0 {
			return specErr(f+".At", "must be >= 0, got %v", im.At)
		}
		if im.Count != 0 || im.Interval != 0 || im.Columns != 0 || im.Rows != 0 {
			return specErr(f, "a poster takes At, not Count, Interval, Columns or Rows")
		}
		return nil
	}
	if im.At != 0 {
		return specErr(f+".At", "only a poster takes At")
	}
	if im.Count < 0 || im.Count > MaxImages {
		return specErr(f+".Count", "must be 0 (one every Interval) or 1..%d, got %d", MaxImages, im.Count)
	}
	if im.Interval < 0 || (im.Interval > 0 && im.Interval < time.Millisecond) {
		return specErr(f+".Interval", "must be 0 or at least 1ms, got %v", im.Interval)
	}
	if !im.spread() && im.Interval == 0 {
		if im.Count > 0 {
			return specErr(f+".Interval", "needed when Duration is unknown (Count alone cannot be spread)")
		}
		return specErr(f+".Interval", "needed when Count is 0")
	}
	if im.Mode == ImagesFrames {
		if im.Columns != 0 || im.Rows != 0 {
			return specErr(f, "only a sprite takes Columns and Rows")
		}
		return nil
	}
	return im.validateSprite(f)
}

func (im *Images) validateSprite(f string) error {
	if im.Columns < 1 || im.Columns > MaxSpriteColumns {
		return specErr(f+".Columns", "must be 1..%d, got %d", MaxSpriteColumns, im.Columns)
	}
	if im.Rows < 0 || im.Rows > MaxImages {
		return specErr(f+".Rows", "must be 0 (as many as needed) or 1..%d, got %d", MaxImages, im.Rows)
	}
	if im.Width == 0 || im.Height == 0 {
		return specErr(f, "a sprite needs Width and Height (the tile's bounding box)")
	}
	n := im.Frames()
	if n == 0 {
		return specErr(f+".Count", "a sprite needs Count or a known Duration to plan its tiles")
	}
	c, r := im.Grid()
	if c*r < n {
		return specErr(f+".Rows", "%d x %d tiles cannot hold %d images", c, r, n)
	}
	// A portrait frame turns the box: a tile is at most max(Width, Height) on either side.
	side := max(im.Width, im.Height)
	if c*side > MaxSpriteSide || r*side > MaxSpriteSide {
		return specErr(f, "a %d x %d sheet of tiles up to %d pixels exceeds %d pixels a side", c, r, side, MaxSpriteSide)
	}
	return nil
}
