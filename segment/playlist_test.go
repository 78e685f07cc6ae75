package segment

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func TestWriteMediaPlaylistEvent(t *testing.T) {
	segs := []Segment{
		{N: 1, Duration: 4 * time.Second},
		{N: 2, Duration: 4100 * time.Millisecond},
	}
	var b bytes.Buffer
	if err := WriteMediaPlaylist(&b, NewMediaPlaylist(segs, false)); err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:5
#EXT-X-MEDIA-SEQUENCE:1
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:4.000000,
seg-00001.m4s
#EXTINF:4.100000,
seg-00002.m4s
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}

	for _, p := range []MediaPlaylist{
		{Init: `a"b`},
		{Segments: []PlaylistSegment{{URI: "a\nb", Duration: time.Second}}},
		{Segments: []PlaylistSegment{{URI: "", Duration: time.Second}}},
		{Segments: []PlaylistSegment{{URI: "#x", Duration: time.Second}}},
		{Segments: []PlaylistSegment{{URI: "x", Duration: -time.Second}}},
	} {
		if err := WriteMediaPlaylist(&b, p); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestWriteMasterPlaylist(t *testing.T) {
	m := Master{
		Variants: []Variant{
			{URI: "720p/index.m3u8", Bandwidth: 3200000, AverageBandwidth: 2500000, Width: 1280, Height: 720, FrameRate: 29.97, Codecs: "avc1.64001f,mp4a.40.2", Audio: "audio"},
			{URI: "360p/index.m3u8", Bandwidth: 900000, Width: 640, Height: 360, FrameRate: 30, Codecs: "avc1.64001e,mp4a.40.2", Audio: "audio", VideoRange: "PQ"},
		},
		Audio: []AudioRendition{{GroupID: "audio", Name: "English", Language: "en", Default: true, URI: "audio/index.m3u8", Channels: 2}},
	}
	var b bytes.Buffer
	if err := WriteMasterPlaylist(&b, m); err != nil {
		t.Fatal(err)
	}
	want := `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-INDEPENDENT-SEGMENTS

#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="English",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/index.m3u8"

#EXT-X-STREAM-INF:BANDWIDTH=3200000,AVERAGE-BANDWIDTH=2500000,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2",FRAME-RATE=29.970,AUDIO="audio"
720p/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360,CODECS="avc1.64001e,mp4a.40.2",FRAME-RATE=30.000,VIDEO-RANGE=PQ,AUDIO="audio"
360p/index.m3u8
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}

	bad := []Master{
		{},
		{Variants: []Variant{{URI: "a", Bandwidth: 0}}},
		{Variants: []Variant{{URI: "a", Bandwidth: 1, Audio: "nope"}}},
		{Variants: []Variant{{URI: "a", Bandwidth: 1, Codecs: `x"`}}},
		{Variants: []Variant{{URI: "a", Bandwidth: 1, VideoRange: "HDR10"}}},
		{Variants: []Variant{{URI: "a", Bandwidth: 1}}, Audio: []AudioRendition{{GroupID: "g", Name: "n"}}},
		{Variants: []Variant{{URI: "a", Bandwidth: 1}}, Audio: []AudioRendition{{GroupID: "g", Name: "a\nb", URI: "u"}}},
	}
	for _, m := range bad {
		if err := WriteMasterPlaylist(&b, m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}

func TestBandwidth(t *testing.T) {
	segs := []Segment{
		{Size: 500000, Duration: 4 * time.Second}, // 1 Mbit/s
		{Size: 300000, Duration: time.Second},     // 2.4 Mbit/s
		{Size: 100, Duration: 0},
	}
	peak, avg := Bandwidth(segs)
	if peak != 2400000 || avg != 1280160 {
		t.Fatalf("peak %d avg %d", peak, avg)
	}
	if p, a := Bandwidth(nil); p != 0 || a != 0 {
		t.Fatal(p, a)
	}
	p, a := VariantBandwidth(segs, []Segment{{Size: 1000, Duration: time.Second}}, []Segment{{Size: 2000, Duration: time.Second}})
	if p != 2400000+16000 || a != 1280160+16000 {
		t.Fatal(p, a)
	}
	if got := FrameRate([]Segment{{Samples: 120, Duration: 4 * time.Second}, {Samples: 30, Duration: time.Second}}); got != 30 {
		t.Fatal(got)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		dec  int
		want string
	}{
		{4 * time.Second, 6, "4.000000"},
		{4*time.Second + 1500*time.Nanosecond, 6, "4.000002"},
		{1001 * time.Millisecond / 30 * 4, 6, "0.133467"},
		{10*time.Second + 10*time.Millisecond, 3, "10.010"},
		{0, 3, "0.000"},
		{1999 * time.Millisecond, 0, "2"},
	} {
		if got := seconds(tc.d, tc.dec); got != tc.want {
			t.Errorf("seconds(%v, %d) = %q, want %q", tc.d, tc.dec, got, tc.want)
		}
	}
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{30, "30"}, {29.97, "30000/1001"}, {29.97002997, "30000/1001"}, {23.976, "24000/1001"},
		{12.5, "25/2"}, {0, ""}, {59.94, "60000/1001"}, {14.999, "15"},
	} {
		if got := frameRateString(tc.f); got != tc.want {
			t.Errorf("frameRateString(%v) = %q, want %q", tc.f, got, tc.want)
		}
	}
	if !ValidName("720p") || !ValidName("a.b_c-d") || ValidName("") || ValidName("..") || ValidName("a/b") || ValidName("-x") || ValidName(strings.Repeat("a", 65)) {
		t.Error("ValidName")
	}
	if SegmentPath("720p", 3) != "720p/seg-00003.m4s" || InitPath("a") != "a/init.mp4" || MediaPlaylistPath("a") != "a/index.m3u8" {
		t.Error("paths")
	}
}

func TestWriteMPD(t *testing.T) {
	video := Track{Kind: "video", Timescale: 15360, Codec: "avc1.64001e", Width: 640, Height: 360, Language: "und"}
	audio := Track{Kind: "audio", Timescale: 48000, Codec: "mp4a.40.2", SampleRate: 48000, Channels: 2, Language: "eng"}
	vsegs := []Segment{
		{N: 1, StartPTS: 0, DurationTS: 61440, Duration: 4 * time.Second, Size: 100000, Samples: 120},
		{N: 2, StartPTS: 61440, DurationTS: 61440, Duration: 4 * time.Second, Size: 100000, Samples: 120},
		{N: 3, StartPTS: 122880, DurationTS: 30720, Duration: 2 * time.Second, Size: 50000, Samples: 60},
	}
	asegs := []Segment{
		{N: 1, StartPTS: 0, DurationTS: 193536, Duration: 4032 * time.Millisecond, Size: 60000},
		{N: 2, StartPTS: 200000, DurationTS: 286464, Duration: 5968 * time.Millisecond, Size: 90000},
	}
	m := MPD{Representations: []Representation{
		{ID: "audio", Track: audio, Segments: asegs},
		{ID: "360p", Track: video, Segments: vsegs},
		{ID: "180p", Track: video, Bandwidth: 123, FrameRate: 29.97, Segments: vsegs},
	}}
	var b bytes.Buffer
	if err := WriteMPD(&b, m); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" type="static" mediaPresentationDuration="PT10.000S" minBufferTime="PT5.968S">
  <Period id="0" start="PT0S">
    <AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">
      <Representation id="360p" bandwidth="200000" codecs="avc1.64001e" width="640" height="360" frameRate="30">
        <SegmentTemplate timescale="15360" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number%05d$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="61440" r="1"></S>
            <S d="30720"></S>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
      <Representation id="180p" bandwidth="123" codecs="avc1.64001e" width="640" height="360" frameRate="30000/1001">
        <SegmentTemplate timescale="15360" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number%05d$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="61440" r="1"></S>
            <S d="30720"></S>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
    <AdaptationSet id="1" contentType="audio" mimeType="audio/mp4" lang="eng" segmentAlignment="true" startWithSAP="1">
      <Representation id="audio" bandwidth="120644" codecs="mp4a.40.2" audioSamplingRate="48000">
        <AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="2"></AudioChannelConfiguration>
        <SegmentTemplate timescale="48000" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/seg-$Number%05d$.m4s" startNumber="1">
          <SegmentTimeline>
            <S t="0" d="193536"></S>
            <S t="200000" d="286464"></S>
          </SegmentTimeline>
        </SegmentTemplate>
      </Representation>
    </AdaptationSet>
  </Period>
</MPD>
`
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
	var back struct {
		Period struct {
			AdaptationSets []struct {
				Representations []struct {
					ID string `xml:"id,attr"`
				} `xml:"Representation"`
			} `xml:"AdaptationSet"`
		}
	}
	if err := xml.Unmarshal(b.Bytes(), &back); err != nil || len(back.Period.AdaptationSets) != 2 || len(back.Period.AdaptationSets[0].Representations) != 2 {
		t.Fatalf("parse back: %v %+v", err, back)
	}

	bad := []MPD{
		{},
		{Representations: []Representation{{ID: "a b", Track: video, Segments: vsegs}}},
		{Representations: []Representation{{ID: "a", Track: video}}},
		{Representations: []Representation{{ID: "a", Track: Track{Kind: "text", Timescale: 1}, Segments: vsegs}}},
		{AdaptationSets: []AdaptationSet{{ContentType: "text", Representations: []Representation{{ID: "a", Track: video, Segments: vsegs}}}}},
		{AdaptationSets: []AdaptationSet{{ContentType: "video"}}},
	}
	for _, m := range bad {
		if err := WriteMPD(&b, m); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
}
