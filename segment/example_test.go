package segment_test

import (
	"os"
	"time"

	"github.com/transcoder/transcoder/segment"
)

func ExampleWriteMediaPlaylist() {
	p := segment.MediaPlaylist{
		Init: segment.InitName,
		Segments: []segment.PlaylistSegment{
			{URI: segment.SegmentName(1), Duration: 4 * time.Second},
			{URI: segment.SegmentName(2), Duration: 4 * time.Second},
			{URI: segment.SegmentName(3), Duration: 2033333333 * time.Nanosecond},
		},
		Ended:               true,
		IndependentSegments: true,
	}
	if err := segment.WriteMediaPlaylist(os.Stdout, p); err != nil {
		panic(err)
	}
	// Output:
	// #EXTM3U
	// #EXT-X-VERSION:7
	// #EXT-X-TARGETDURATION:4
	// #EXT-X-MEDIA-SEQUENCE:1
	// #EXT-X-PLAYLIST-TYPE:VOD
	// #EXT-X-INDEPENDENT-SEGMENTS
	// #EXT-X-MAP:URI="init.mp4"
	// #EXTINF:4.000000,
	// seg-00001.m4s
	// #EXTINF:4.000000,
	// seg-00002.m4s
	// #EXTINF:2.033333,
	// seg-00003.m4s
	// #EXT-X-ENDLIST
}
