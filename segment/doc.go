// Package segment packages fragmented MP4 for HLS and DASH: a Segmenter cuts the fMP4 byte
// stream of one ffmpeg output (one track) into an init segment and CMAF media segments as the
// bytes arrive, and the Write* functions write HLS media and multivariant playlists and a
// static DASH MPD for the renditions.
//
// # Input
//
// The stream is what ffmpeg's mp4 muxer writes to a pipe with
// -movflags +frag_keyframe+empty_moov+default_base_moof+cmaf (video: a fragment per keyframe)
// or +empty_moov+default_base_moof+cmaf with -frag_duration (audio): ftyp, moov (with mvex),
// then moof+mdat pairs, and mfra at the end. One track per stream is the contract: a moov with
// several tracks is rejected, as are plain (unfragmented) MP4, an explicit tfhd
// base_data_offset (segments must be relocatable), and anything that is not ISO BMFF. Box
// sizes may be 32- or 64-bit; size 0 (to the end) is accepted for a last mdat only.
//
// Memory: ftyp, moov and each moof are held (up to Config.MaxBox bytes each); mdat payloads
// are forwarded to the Handler's writer as they arrive, so a segment is never held. Top-level
// boxes between fragments (styp, sidx, prft, emsg, free, mfra, ...) are dropped; a box between
// a moof and its mdat is kept with them.
//
// # Cutting rule
//
// Each fragment (moof) has a start time: the presentation time of its first sample,
//
//	tfdt.baseMediaDecodeTime + composition offset of the first sample + edit-list shift
//
// in the track timescale. With the cmaf movflag the composition offset of a keyframe is 0 and
// there is no edit list, so this is exactly tfdt; without it (positive composition offsets and
// an edit list) it is the same presentation time, so both write modes cut alike. The first
// fragment starts segment 1. A later fragment starts a new segment when both
//
//   - its start time is >= k*Target, where k*Target is the first multiple of Target (k >= 1)
//     after the start time of the current segment's first fragment, and
//   - its first sample is a sync sample (trun first_sample_flags, else its own sample flags,
//     else the tfhd or trex default flags; for audio every sample is a sync sample).
//
// Renditions encoded with the same forced keyframes (-force_key_frames expr:gte(t,n_forced*T),
// scene cuts off) therefore get identical segment boundaries, even where one encoder inserted
// an extra keyframe: an extra keyframe before a boundary is not at a boundary and does not cut.
// When a keyframe is missing at a boundary the segment runs on to the next keyframe, and the
// next boundary is the first multiple of Target after that. Segment durations are the sums of
// their sample durations, so consecutive segments tile the timeline exactly.
//
// # Layout
//
// See the constants in naming.go: rendition NAME/ holds init.mp4, seg-00001.m4s, ... and
// index.m3u8; master.m3u8 and manifest.mpd sit above the rendition directories.
package segment
