package segment

import (
	"fmt"
	"path"
)

// The layout of a packaged output. Each rendition NAME is a directory:
//
//	master.m3u8            HLS multivariant playlist
//	manifest.mpd           DASH manifest
//	NAME/index.m3u8        HLS media playlist
//	NAME/init.mp4          init segment (ftyp+moov)
//	NAME/seg-00001.m4s ... media segments, numbered from 1
//
// Playlist URIs are relative: the master names NAME/index.m3u8, a media playlist names
// init.mp4 and seg-NNNNN.m4s, and the MPD's templates name $RepresentationID$/..., so a
// Representation's id is its rendition NAME.
const (
	MasterPlaylistName = "master.m3u8"
	ManifestName       = "manifest.mpd"
	MediaPlaylistName  = "index.m3u8"
	InitName           = "init.mp4"
	// SegmentNameFormat formats a segment number into its file name.
	SegmentNameFormat = "seg-%05d.m4s"

	// DASHInitTemplate and DASHMediaTemplate are the SegmentTemplate attributes matching the
	// names above.
	DASHInitTemplate  = "$RepresentationID$/" + InitName
	DASHMediaTemplate = "$RepresentationID$/seg-$Number%05d$.m4s"
)

// SegmentName returns the file name of media segment n: seg-00001.m4s for 1. Numbers past
// 99999 take more digits, as $Number%05d$ does.
func SegmentName(n int) string { return fmt.Sprintf(SegmentNameFormat, n) }

// InitPath returns NAME/init.mp4.
func InitPath(rendition string) string { return path.Join(rendition, InitName) }

// SegmentPath returns NAME/seg-NNNNN.m4s.
func SegmentPath(rendition string, n int) string { return path.Join(rendition, SegmentName(n)) }

// MediaPlaylistPath returns NAME/index.m3u8.
func MediaPlaylistPath(rendition string) string { return path.Join(rendition, MediaPlaylistName) }

// ValidName reports whether name can be a rendition name: it becomes a directory, a URI path
// segment and a DASH Representation id, so it is 1 to 64 characters of [A-Za-z0-9._-],
// starting with a letter or digit.
func ValidName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}
