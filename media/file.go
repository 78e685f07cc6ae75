package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/pipeline"
	"github.com/transcoder/transcoder/storage"
)

// fileOutput writes one single-file output to its store. A local output is written to a
// hidden part file beside its final name (the store's), which ffprobe verifies before the
// rename. A remote output (http PUT, nats object store, s3) streams to the store as ffmpeg
// writes it, and a copy goes to a spool file for the verification: the remote object is
// completed (Commit) only once the copy is verified, so a bad output never becomes visible.
// A faststart output is written by ffmpeg to a spool file of its own (its pipe stays empty),
// and goes to the store through the ring once ffmpeg is done.
type fileOutput struct {
	e     *Engine
	url   string
	want  ffmpeg.Output // what the plan asked ffmpeg for
	acq   pipeline.Acquirer
	w     storage.Writer
	local string   // the file ffprobe verifies
	spool *os.File // the copy of a remote output; nil for local ones
	h     hash.Hash
	n     int64
	out   *atomic.Int64
	first func() // called once, at the first byte; may be nil
	res   job.OutputResult
	done  bool // published
}

func newFileOutput(ctx context.Context, e *Engine, t *Task, po PlannedOutput, want ffmpeg.Output, first func()) (*fileOutput, error) {
	w, err := e.cfg.Storage.Create(ctx, po.URL, storage.CreateOptions{JobID: t.ID, Attempt: t.Attempt, ContentType: contentType(po.URL)})
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	s := &fileOutput{e: e, url: po.URL, want: want, acq: t.Buffers, w: w, h: sha256.New(), out: &t.Meter.BytesOut, first: first}
	if lw, ok := w.(storage.LocalWriter); ok {
		s.local = lw.LocalPath()
		return s, nil
	}
	if s.spool, err = os.CreateTemp(e.cfg.SpoolDir, "transcoder-out-"+t.ID+"-*"); err != nil {
		w.Abort()
		return nil, spoolErr(err, filepath.Join(e.cfg.SpoolDir, "x"))
	}
	s.local = s.spool.Name()
	return s, nil
}

func (s *fileOutput) writers() []io.Writer {
	if s.want.Path != "" {
		return []io.Writer{io.Discard} // ffmpeg writes the spool file itself
	}
	return []io.Writer{s}
}

// Write writes to the store (and the spool copy) and the checksum; it allocates nothing.
func (s *fileOutput) Write(p []byte) (int, error) {
	if s.first != nil && len(p) > 0 {
		s.first()
		s.first = nil
	}
	n, err := s.w.Write(p)
	if err == nil && s.spool != nil {
		if _, serr := s.spool.Write(p[:n]); serr != nil {
			err = spoolErr(serr, s.spool.Name())
		}
	}
	s.h.Write(p[:n])
	s.n += int64(n)
	s.out.Add(int64(n))
	return n, err
}

// verify brings a faststart output from its spool file, then flushes a local output to disk
// beside the probe, so that the commit finds nothing left to flush.
func (s *fileOutput) verify(ctx context.Context, c *check) error {
	probed := s.local
	if s.want.Path != "" {
		probed = s.want.Path // the file ffmpeg wrote, measured while it is copied out
	}
	var copyErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		if s.want.Path != "" {
			if copyErr = copySpool(ctx, s.want.Path, s, s.acq); copyErr != nil {
				return
			}
		}
		if f, ok := s.w.(interface{ Sync() error }); ok {
			if err := f.Sync(); err != nil {
				copyErr = fmt.Errorf("output: %w", err)
			}
		}
	})
	res, err := s.e.verifyFile(ctx, c, s.want, probed)
	wg.Wait()
	if s.want.Path != "" {
		_ = os.Remove(s.want.Path)
	}
	s.res = res
	s.res.Size, s.res.SHA256 = s.n, hex.EncodeToString(s.h.Sum(nil))
	switch {
	case copyErr != nil:
		return copyErr
	case s.n >= c.lim.MaxOutputBytes:
		// Cut by -fs: the input asked for more than the limits allow.
		return &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("output limit reached: %d bytes (max_output_bytes)", s.n)}
	}
	return err
}

// publish commits the output under its final name.
func (s *fileOutput) publish(ctx context.Context) (job.OutputResult, error) {
	if err := s.w.Commit(ctx); err != nil {
		s.abort()
		return s.res, fmt.Errorf("commit output: %w", err)
	}
	s.done = true
	s.dropSpool()
	s.res.URL = s.url
	return s.res, nil
}

// abort discards the output: nothing appears under its final name.
func (s *fileOutput) abort() {
	if s.done {
		return
	}
	s.w.Abort()
	s.dropSpool()
	if s.want.Path != "" {
		_ = os.Remove(s.want.Path)
	}
}

// unpublish deletes the committed output, even after the task's context ended.
func (s *fileOutput) unpublish(ctx context.Context) []string {
	if !s.done {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), takeBackTimeout)
	defer cancel()
	if err := s.e.cfg.Storage.Delete(ctx, s.url); err != nil {
		return nil
	}
	s.done = false
	return []string{s.url}
}

func (s *fileOutput) dropSpool() {
	if s.spool != nil {
		_ = s.spool.Close()
		_ = os.Remove(s.spool.Name())
		s.spool = nil
	}
}

// copySpool streams a spool file into a sink, one ring buffer at a time.
func copySpool(ctx context.Context, path string, dst io.Writer, acq pipeline.Acquirer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("spooled output: %w", err)
	}
	defer func() { _ = f.Close() }()
	_, err = Copy(ctx, dst, f, acq)
	return err
}

// Copy streams src into dst one ring buffer at a time: media between stores never bypasses
// the ring. It returns the bytes copied.
func Copy(ctx context.Context, dst io.Writer, src io.Reader, acq pipeline.Acquirer) (int64, error) {
	var n int64
	for {
		b, err := acq.Acquire(ctx)
		if err != nil {
			return n, err
		}
		m, rerr := io.ReadFull(src, b.Space())
		if m > 0 {
			if _, err := dst.Write(b.Space()[:m]); err != nil {
				acq.Release(b)
				return n, fmt.Errorf("output: %w", err)
			}
			n += int64(m)
		}
		acq.Release(b)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return n, nil
		}
		if rerr != nil {
			return n, fmt.Errorf("read: %w", rerr)
		}
	}
}

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

// objects is the task's storage as outputs of many objects (ladders, images) use it.
type objects struct {
	st      *storage.Store
	jobID   string
	attempt int
}

func (a objects) create(ctx context.Context, url string) (objWriter, error) {
	return a.st.Create(ctx, url, storage.CreateOptions{JobID: a.jobID, Attempt: a.attempt, ContentType: contentType(url)})
}

func (a objects) remove(ctx context.Context, url string) error { return a.st.Delete(ctx, url) }

// join names an object under a prefix; the prefix of a ladder or thumbnails output is a
// directory whether or not its URL ends in '/'.
func (a objects) join(prefix, name string) (string, error) {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return storage.Join(prefix, name)
}

// takeBackTimeout bounds the removal of what a failed task published.
const takeBackTimeout = 30 * time.Second

// published is what an output of many objects (a ladder, thumbnails) has made visible so far,
// so that an aborted attempt, or a later output's failure, can take it back. Safe for
// concurrent use: a ladder's renditions record from their own goroutines.
type published struct {
	mu   sync.Mutex
	urls []string
	out  bool // the output exists (its playlist or index is out): abort leaves it alone
}

// exists marks the output complete: from now on only unpublish takes it back.
func (p *published) exists() { p.out = true }

// unpublish takes back a complete output, and returns what it removed.
func (p *published) unpublish(ctx context.Context, store objStore) []string {
	if !p.out {
		return nil
	}
	p.out = false
	return p.takeBack(ctx, store)
}

func (p *published) record(url string) {
	p.mu.Lock()
	p.urls = append(p.urls, url)
	p.mu.Unlock()
}

// takeBack deletes every recorded object, even after the job's context ended, and returns
// the ones it removed.
func (p *published) takeBack(ctx context.Context, store objStore) []string {
	p.mu.Lock()
	urls := p.urls
	p.urls = nil
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), takeBackTimeout)
	defer cancel()
	// Newest first: the playlist or index that makes the output exist goes before its parts.
	var removed []string
	for i := len(urls) - 1; i >= 0; i-- {
		if store.remove(ctx, urls[i]) == nil {
			removed = append(removed, urls[i])
		}
	}
	return removed
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
