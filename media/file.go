package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transcoder/transcoder/storage"
)

// outSink writes one single-file output to its store. A local output is written to a hidden
// part file beside its final name (the store's), which ffprobe verifies before the rename. A
// remote output (http PUT, nats object store, s3) streams to the store as ffmpeg writes it,
// and a copy goes to a spool file for the verification: the remote object is completed
// (Commit) only once the copy is verified, so a bad output never becomes visible.
type outSink struct {
	w     storage.Writer
	local string   // the file ffprobe verifies
	spool *os.File // the copy of a remote output; nil for local ones
	h     hash.Hash
	n     int64
	out   *atomic.Int64
	first func() // called once, at the first byte; may be nil
}

func newOutSink(ctx context.Context, st *storage.Store, url, spoolDir, jobID string, attempt int, out *atomic.Int64) (*outSink, error) {
	w, err := st.Create(ctx, url, storage.CreateOptions{JobID: jobID, Attempt: attempt, ContentType: contentType(url)})
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	s := &outSink{w: w, h: sha256.New(), out: out}
	if lw, ok := w.(storage.LocalWriter); ok {
		s.local = lw.LocalPath()
		return s, nil
	}
	if s.spool, err = os.CreateTemp(spoolDir, "transcoder-out-"+jobID+"-*"); err != nil {
		w.Abort()
		return nil, fmt.Errorf("output spool: %w", err)
	}
	s.local = s.spool.Name()
	return s, nil
}

// Write writes to the store (and the spool copy) and the checksum; it allocates nothing.
func (s *outSink) Write(p []byte) (int, error) {
	if s.first != nil && len(p) > 0 {
		s.first()
		s.first = nil
	}
	n, err := s.w.Write(p)
	if err == nil && s.spool != nil {
		_, err = s.spool.Write(p[:n])
	}
	s.h.Write(p[:n])
	s.n += int64(n)
	s.out.Add(int64(n))
	return n, err
}

// Sync flushes a local output to disk ahead of Commit, so the rename finds nothing left to
// flush; it runs beside the verification.
func (s *outSink) Sync() error {
	if f, ok := s.w.(interface{ Sync() error }); ok {
		return f.Sync()
	}
	return nil
}

// Commit publishes the output under its final name.
func (s *outSink) Commit(ctx context.Context) error {
	if err := s.w.Commit(ctx); err != nil {
		s.Abort()
		return fmt.Errorf("commit output: %w", err)
	}
	s.dropSpool()
	return nil
}

// Abort discards the output: nothing appears under its final name.
func (s *outSink) Abort() {
	s.w.Abort()
	s.dropSpool()
}

func (s *outSink) dropSpool() {
	if s.spool != nil {
		_ = s.spool.Close()
		_ = os.Remove(s.spool.Name())
		s.spool = nil
	}
}

func (s *outSink) Sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// contentType is the MIME type of an output, from its name, for stores that keep one.
func contentType(url string) string {
	for _, t := range []struct{ ext, typ string }{
		{".mp4", "video/mp4"}, {".m4a", "audio/mp4"}, {".m4s", "video/iso.segment"}, {".webm", "video/webm"},
		{".mkv", "video/x-matroska"}, {".ts", "video/mp2t"}, {".ogg", "audio/ogg"}, {".opus", "audio/ogg"},
		{".m3u8", "application/vnd.apple.mpegurl"}, {".mpd", "application/dash+xml"},
		{".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".vtt", "text/vtt"},
	} {
		if len(url) > len(t.ext) && url[len(url)-len(t.ext):] == t.ext {
			return t.typ
		}
	}
	return "application/octet-stream"
}

// storeAdapter is the worker's storage as the ladder sink needs it.
type storeAdapter struct {
	st      *storage.Store
	jobID   string
	attempt int
}

func (a storeAdapter) create(ctx context.Context, url string) (objWriter, error) {
	return a.st.Create(ctx, url, storage.CreateOptions{JobID: a.jobID, Attempt: a.attempt, ContentType: contentType(url)})
}

func (a storeAdapter) remove(ctx context.Context, url string) error { return a.st.Delete(ctx, url) }

// join names an object under a prefix; the prefix of a ladder or thumbnails output is a
// directory whether or not its URL ends in '/'.
func (a storeAdapter) join(prefix, name string) (string, error) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return storage.Join(prefix, name)
}

// published is what an output of many objects (a ladder, thumbnails) has made visible so far,
// so that an aborted attempt can take it back. Safe for concurrent use: a ladder's renditions
// record from their own goroutines.
type published struct {
	mu   sync.Mutex
	urls []string
}

func (p *published) record(url string) {
	p.mu.Lock()
	p.urls = append(p.urls, url)
	p.mu.Unlock()
}

// takeBack deletes every recorded object, even after the job's context ended.
func (p *published) takeBack(ctx context.Context, store objStore) {
	p.mu.Lock()
	urls := p.urls
	p.urls = nil
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, u := range urls {
		_ = store.remove(ctx, u)
	}
}

// putObject writes a small object (a playlist, an index) whole and commits it.
func putObject(ctx context.Context, store objStore, url string, data []byte) error {
	w, err := store.create(ctx, url)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(ctx); err != nil {
		w.Abort()
		return err
	}
	return nil
}
