package thumbs

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Sprite describes a sprite sheet for its WebVTT index.
type Sprite struct {
	// URI is how the VTT names the sheet, relative to the VTT's own URL (e.g. "sprite.jpg").
	URI string
	// Columns x Rows is the grid; tiles fill it row by row. Rows 0 = as many as Times needs.
	Columns, Rows int
	// Width x Height is the size of one tile in pixels.
	Width, Height int
	// Times holds the start of each tile's cue, increasing: cue i spans Times[i] to
	// Times[i+1], the last one to End. Slots gives them for an ffmpeg.Images plan.
	Times []time.Duration
	// End is the end of the last cue: the video's duration.
	End time.Duration
}

// WriteVTT writes the WebVTT index of sp: one cue per tile, whose payload is the sheet's URI
// with a media fragment naming the tile, "sprite.jpg#xywh=x,y,w,h".
func WriteVTT(w io.Writer, sp Sprite) error {
	if err := sp.validate(); err != nil {
		return err
	}
	b := make([]byte, 0, 8+len(sp.Times)*(64+len(sp.URI)))
	b = append(b, "WEBVTT\n"...)
	for i, start := range sp.Times {
		end := sp.End
		if i+1 < len(sp.Times) {
			end = sp.Times[i+1]
		}
		b = append(b, '\n')
		b = appendTimestamp(b, start)
		b = append(b, " --> "...)
		b = appendTimestamp(b, end)
		b = append(b, '\n')
		b = append(b, sp.URI...)
		b = append(b, "#xywh="...)
		b = strconv.AppendInt(b, int64(i%sp.Columns*sp.Width), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(i/sp.Columns*sp.Height), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(sp.Width), 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(sp.Height), 10)
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

func (sp *Sprite) validate() error {
	switch {
	case sp.URI == "" || strings.ContainsAny(sp.URI, "\r\n#") || strings.Contains(sp.URI, "-->"):
		return fmt.Errorf("thumbs: sprite URI %q: want a non-empty URI without line breaks, # or -->", sp.URI)
	case sp.Columns < 1 || sp.Rows < 0:
		return fmt.Errorf("thumbs: sprite grid %d x %d", sp.Columns, sp.Rows)
	case sp.Width < 1 || sp.Height < 1:
		return fmt.Errorf("thumbs: sprite tile size %d x %d", sp.Width, sp.Height)
	case len(sp.Times) == 0:
		return errors.New("thumbs: sprite without tiles")
	case sp.Rows > 0 && len(sp.Times) > sp.Columns*sp.Rows:
		return fmt.Errorf("thumbs: %d tiles do not fit a %d x %d sprite", len(sp.Times), sp.Columns, sp.Rows)
	case sp.Times[0] < 0:
		return fmt.Errorf("thumbs: sprite tile 0 starts at %v", sp.Times[0])
	}
	// Compared as written, in whole milliseconds: a cue must end after it starts.
	for i := 1; i < len(sp.Times); i++ {
		if sp.Times[i]/time.Millisecond <= sp.Times[i-1]/time.Millisecond {
			return fmt.Errorf("thumbs: sprite tile %d starts at %v, not a millisecond after tile %d (%v)", i, sp.Times[i], i-1, sp.Times[i-1])
		}
	}
	if last := sp.Times[len(sp.Times)-1]; sp.End/time.Millisecond <= last/time.Millisecond {
		return fmt.Errorf("thumbs: sprite ends at %v, not a millisecond after its last tile starts (%v)", sp.End, last)
	}
	return nil
}

// appendTimestamp appends d as a WebVTT timestamp, HH:MM:SS.mmm (milliseconds rounded down;
// hours take more digits past 99).
func appendTimestamp(b []byte, d time.Duration) []byte {
	ms := int64(d / time.Millisecond)
	h, m, s := ms/3600000, ms/60000%60, ms/1000%60
	b = appendPadded(b, h, 2)
	b = append(b, ':')
	b = appendPadded(b, m, 2)
	b = append(b, ':')
	b = appendPadded(b, s, 2)
	b = append(b, '.')
	return appendPadded(b, ms%1000, 3)
}

func appendPadded(b []byte, v int64, width int) []byte {
	for p, i := int64(1), 1; i < width; i++ {
		if p *= 10; v < p {
			b = append(b, '0')
		}
	}
	return strconv.AppendInt(b, v, 10)
}
