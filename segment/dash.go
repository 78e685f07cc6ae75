package segment

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// MPD is a static DASH manifest (ISO/IEC 23009-1, live profile) for packaged renditions: one
// Period, one AdaptationSet per content type, and in each Representation a SegmentTemplate with
// its own timescale and SegmentTimeline, since renditions differ in both.
type MPD struct {
	// Duration is mediaPresentationDuration; when zero, the longest Representation's.
	Duration time.Duration
	// MinBufferTime; when zero, the longest segment (a player that buffers one segment
	// ahead can then start).
	MinBufferTime  time.Duration
	AdaptationSets []AdaptationSet
	// Representations not placed in AdaptationSets: WriteMPD groups them by Track.Kind into a
	// video set and an audio set (in that order, after AdaptationSets), keeping their order.
	Representations []Representation
}

// AdaptationSet groups the renditions of one content type.
type AdaptationSet struct {
	ContentType string // "video" or "audio"; when empty, the first Representation's Track.Kind
	// Lang is the set's language; when empty, the first Representation's Track.Language
	// unless that is "und".
	Lang            string
	Representations []Representation
}

// Representation is one rendition: its Track (from its Segmenter) gives codecs, timescale,
// resolution, sample rate and channels.
type Representation struct {
	ID        string // the rendition NAME (see ValidName): the templates expand it to a directory
	Track     Track
	Bandwidth int     // bits/s; when zero, the peak segment bit rate (Bandwidth)
	FrameRate float64 // video; when zero, FrameRate(Segments). Written as 30 or 30000/1001
	Segments  []Segment
	// BaseURL is a text representation's one WebVTT file (AdaptationSet ContentType "text",
	// which has neither Track nor Segments but Track.Language).
	BaseURL string
}

const (
	mpdNamespace   = "urn:mpeg:dash:schema:mpd:2011"
	mpdProfileLive = "urn:mpeg:dash:profile:isoff-live:2011"
	audioChanCfg   = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
)

type xmlMPD struct {
	XMLName                   xml.Name `xml:"urn:mpeg:dash:schema:mpd:2011 MPD"`
	Profiles                  string   `xml:"profiles,attr"`
	Type                      string   `xml:"type,attr"`
	MediaPresentationDuration string   `xml:"mediaPresentationDuration,attr"`
	MinBufferTime             string   `xml:"minBufferTime,attr"`
	Period                    xmlPeriod
}

type xmlPeriod struct {
	XMLName        xml.Name `xml:"Period"`
	ID             string   `xml:"id,attr"`
	Start          string   `xml:"start,attr"`
	AdaptationSets []xmlAdaptationSet
}

type xmlAdaptationSet struct {
	XMLName          xml.Name `xml:"AdaptationSet"`
	ID               int      `xml:"id,attr"`
	ContentType      string   `xml:"contentType,attr"`
	MimeType         string   `xml:"mimeType,attr"`
	Lang             string   `xml:"lang,attr,omitempty"`
	SegmentAlignment bool     `xml:"segmentAlignment,attr"`
	StartWithSAP     int      `xml:"startWithSAP,attr"`
	Representations  []xmlRepresentation
}

type xmlRepresentation struct {
	XMLName           xml.Name `xml:"Representation"`
	ID                string   `xml:"id,attr"`
	Bandwidth         int      `xml:"bandwidth,attr"`
	Codecs            string   `xml:"codecs,attr,omitempty"`
	Width             int      `xml:"width,attr,omitempty"`
	Height            int      `xml:"height,attr,omitempty"`
	FrameRate         string   `xml:"frameRate,attr,omitempty"`
	AudioSamplingRate int      `xml:"audioSamplingRate,attr,omitempty"`
	AudioChannels     *xmlDescriptor
	BaseURL           string `xml:"BaseURL,omitempty"`
	SegmentTemplate   *xmlSegmentTemplate
}

type xmlDescriptor struct {
	XMLName     xml.Name `xml:"AudioChannelConfiguration"`
	SchemeIDURI string   `xml:"schemeIdUri,attr"`
	Value       string   `xml:"value,attr"`
}

type xmlSegmentTemplate struct {
	XMLName        xml.Name `xml:"SegmentTemplate"`
	Timescale      uint32   `xml:"timescale,attr"`
	Initialization string   `xml:"initialization,attr"`
	Media          string   `xml:"media,attr"`
	StartNumber    int      `xml:"startNumber,attr"`
	Timeline       []xmlS   `xml:"SegmentTimeline>S"`
}

type xmlS struct {
	T *uint64 `xml:"t,attr"`
	D uint64  `xml:"d,attr"`
	R int     `xml:"r,attr,omitempty"`
}

// WriteMPD writes m as a static MPD.
func WriteMPD(w io.Writer, m MPD) error {
	doc := xmlMPD{Profiles: mpdProfileLive, Type: "static", Period: xmlPeriod{ID: "0", Start: "PT0S"}}
	sets := m.AdaptationSets
	for _, kind := range [...]string{"video", "audio"} {
		var reps []Representation
		for _, r := range m.Representations {
			if r.Track.Kind == kind {
				reps = append(reps, r)
			}
		}
		if len(reps) > 0 {
			sets = append(sets[:len(sets):len(sets)], AdaptationSet{ContentType: kind, Representations: reps})
		}
	}
	for _, r := range m.Representations {
		if r.Track.Kind != "video" && r.Track.Kind != "audio" {
			return fmt.Errorf("segment: representation %q: track kind %q, want video or audio", r.ID, r.Track.Kind)
		}
	}
	if len(sets) == 0 {
		return errors.New("segment: MPD without representations")
	}
	var longest, longestSeg time.Duration
	for i, as := range sets {
		if len(as.Representations) == 0 {
			return fmt.Errorf("segment: adaptation set %d: no representations", i)
		}
		if as.ContentType == "" {
			as.ContentType = as.Representations[0].Track.Kind
		}
		if l := as.Representations[0].Track.Language; as.Lang == "" && l != "und" {
			as.Lang = l
		}
		x := xmlAdaptationSet{ID: i, ContentType: as.ContentType, Lang: as.Lang, SegmentAlignment: true, StartWithSAP: 1}
		switch as.ContentType {
		case "video", "audio":
			x.MimeType = as.ContentType + "/mp4"
		case "text":
			x.MimeType, x.SegmentAlignment, x.StartWithSAP = "text/vtt", false, 0
		default:
			return fmt.Errorf("segment: adaptation set %d: content type %q, want video, audio or text", i, as.ContentType)
		}
		for _, r := range as.Representations {
			if as.ContentType == "text" {
				if !ValidName(r.ID) || r.BaseURL == "" {
					return fmt.Errorf("segment: text representation %q: a valid name and a BaseURL", r.ID)
				}
				x.Representations = append(x.Representations, xmlRepresentation{ID: r.ID, Bandwidth: max(r.Bandwidth, 1), BaseURL: r.BaseURL})
				continue
			}
			xr, err := mediaRepresentation(r, as.ContentType)
			if err != nil {
				return err
			}
			x.Representations = append(x.Representations, xr)
			var total time.Duration
			for _, s := range r.Segments {
				total += s.Duration
				longestSeg = max(longestSeg, s.Duration)
			}
			longest = max(longest, total)
		}
		doc.Period.AdaptationSets = append(doc.Period.AdaptationSets, x)
	}
	if m.Duration == 0 {
		m.Duration = longest
	}
	if m.MinBufferTime == 0 {
		m.MinBufferTime = longestSeg
	}
	doc.MediaPresentationDuration = "PT" + seconds(m.Duration, 3) + "S"
	doc.MinBufferTime = "PT" + seconds(m.MinBufferTime, 3) + "S"

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// mediaRepresentation is the Representation of a video or audio rendition's CMAF segments.
func mediaRepresentation(r Representation, kind string) (xmlRepresentation, error) {
	if !ValidName(r.ID) {
		return xmlRepresentation{}, fmt.Errorf("segment: representation id %q: not a valid rendition name", r.ID)
	}
	t := r.Track
	if t.Timescale == 0 || len(r.Segments) == 0 {
		return xmlRepresentation{}, fmt.Errorf("segment: representation %q: no timescale or no segments", r.ID)
	}
	if r.Segments[0].N <= 0 {
		return xmlRepresentation{}, fmt.Errorf("segment: representation %q: first segment number %d", r.ID, r.Segments[0].N)
	}
	if r.Bandwidth == 0 {
		r.Bandwidth, _ = Bandwidth(r.Segments)
	}
	xr := xmlRepresentation{
		ID: r.ID, Bandwidth: r.Bandwidth, Codecs: t.Codec,
		SegmentTemplate: &xmlSegmentTemplate{
			Timescale: t.Timescale, Initialization: DASHInitTemplate, Media: DASHMediaTemplate,
			StartNumber: r.Segments[0].N, Timeline: timeline(r.Segments),
		},
	}
	if kind == "video" {
		if r.FrameRate == 0 {
			r.FrameRate = FrameRate(r.Segments)
		}
		xr.Width, xr.Height, xr.FrameRate = t.Width, t.Height, frameRateString(r.FrameRate)
	} else {
		xr.AudioSamplingRate = t.SampleRate
		if t.Channels > 0 {
			xr.AudioChannels = &xmlDescriptor{SchemeIDURI: audioChanCfg, Value: strconv.Itoa(t.Channels)}
		}
	}
	return xr, nil
}

// timeline compacts segments into S elements: t on the first and after any gap or overlap,
// r for repeats of one duration.
func timeline(segs []Segment) []xmlS {
	var out []xmlS
	var next uint64
	for i, s := range segs {
		if i > 0 && s.StartPTS == next {
			last := &out[len(out)-1]
			if last.D == s.DurationTS {
				last.R++
				next += s.DurationTS
				continue
			}
			out = append(out, xmlS{D: s.DurationTS})
		} else {
			t := s.StartPTS
			out = append(out, xmlS{T: &t, D: s.DurationTS})
		}
		next = s.StartPTS + s.DurationTS
	}
	return out
}

// frameRateString writes a frame rate as DASH's FrameRateType wants it: an integer, or a
// fraction for NTSC rates (30000/1001); anything else as thousandths, reduced.
func frameRateString(f float64) string {
	if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		return ""
	}
	if r := math.Round(f); math.Abs(f-r) < 0.005 {
		return strconv.Itoa(int(r))
	}
	if n := math.Round(f * 1.001); math.Abs(f-n/1.001) < 0.005 {
		return fmt.Sprintf("%d/1001", int(n)*1000)
	}
	num, den := int(math.Round(f*1000)), 1000
	for a, b := num, den; ; {
		if b == 0 {
			num, den = num/a, den/a
			break
		}
		a, b = b, a%b
	}
	return fmt.Sprintf("%d/%d", num, den)
}
