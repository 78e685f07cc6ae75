package media

import "bytes"

// tsPrograms counts the programmes an MPEG-TS head lists in its first programme association
// table (PAT), 0 when the head is not MPEG-TS (188-byte packets, or 192-byte M2TS ones) or holds
// no PAT. A multiplex of several programmes is probed before ffmpeg starts, so the plan maps the
// streams of one programme (the first with video), not the first video of one channel with the
// first audio of another.
func tsPrograms(head []byte) int {
	size, off := tsPacketSize(head)
	if size == 0 {
		return 0
	}
	for ; off+188 <= len(head); off += size {
		if n, ok := patPrograms(head[off : off+188]); ok {
			return n
		}
	}
	return 0
}

// tsPacketSize is the packet size of a TS head and the offset of its first sync byte; 0 when
// three packets in a row do not start with one.
func tsPacketSize(b []byte) (size, off int) {
	for _, c := range []struct{ size, off int }{{188, 0}, {192, 4}} {
		ok := len(b) >= c.off+2*c.size+1
		for i := 0; ok && i < 3; i++ {
			ok = b[c.off+i*c.size] == 0x47
		}
		if ok {
			return c.size, c.off
		}
	}
	return 0, 0
}

// patPrograms reads one TS packet: ok when it starts a PAT section (PID 0), with the number of
// programmes it lists (program number 0 is the network information table, not a programme).
// A section longer than the packet is counted as far as the packet goes.
func patPrograms(p []byte) (int, bool) {
	pid := int(p[1]&0x1f)<<8 | int(p[2])
	if pid != 0 || p[1]&0x40 == 0 || p[3]&0x10 == 0 {
		return 0, false
	}
	i := 4
	if p[3]&0x20 != 0 { // adaptation field
		i += 1 + int(p[4])
	}
	if i >= len(p) {
		return 0, false
	}
	i += 1 + int(p[i]) // pointer field
	if i+8 > len(p) || p[i] != 0 {
		return 0, false
	}
	end := min(len(p), i+3+(int(p[i+1]&0x0f)<<8|int(p[i+2]))-4) // the CRC is not an entry
	n := 0
	for e := i + 8; e+4 <= end; e += 4 {
		if p[e] != 0 || p[e+1] != 0 {
			n++
		}
	}
	return n, true
}

// wtvGUID opens every Windows Recorded TV (WTV) file.
var wtvGUID = []byte{0xb7, 0xd8, 0x00, 0x20, 0x37, 0x49, 0xda, 0x11, 0xa6, 0x4e, 0x00, 0x07, 0xe9, 0x5e, 0xad, 0x8d}

// needsSeek reports a head whose demuxer must seek the input (WTV: a file system of sectors
// whose directory says where each stream's data lies), so it is spooled to a file as an mp4
// with its index at the end is; from a pipe, ffmpeg finds "invalid data".
func needsSeek(head []byte) bool {
	return bytes.HasPrefix(head, wtvGUID)
}
