package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsErr classifies a NATS or JetStream error.
func natsErr(ctx context.Context, op, raw string, err error) error {
	if cerr := ctxErr(ctx, op, raw); cerr != nil {
		return cerr
	}
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound), errors.Is(err, jetstream.ErrObjectNotFound), errors.Is(err, jetstream.ErrStreamNotFound):
		return newErr(op, raw, ErrNotFound, "", err)
	case errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, nats.ErrAuthorization):
		return newErr(op, raw, ErrForbidden, "", err)
	case errors.Is(err, jetstream.ErrInvalidStoreName), errors.Is(err, jetstream.ErrBadObjectMeta), errors.Is(err, jetstream.ErrLinkNotAllowed):
		return newErr(op, raw, ErrRejected, "", err)
	}
	return newErr(op, raw, ErrUnavailable, "", err)
}

// natsReader reads an object's chunks one request at a time (a direct get of the next message
// on the object's chunk subject), so the reader pulls at its own pace: a slow consumer holds one
// chunk, never a queue of them, each request is bounded by IdleTimeout and ctx, and the digest
// is checked at the end. (ObjectStore.Get is not used: with a context without deadline it fails
// any object that takes longer than the JetStream default timeout, 5s, to read, and its reads
// do not wake on cancellation while no chunk arrives.)
type natsReader struct {
	s      *Store
	ctx    context.Context
	raw    string
	stream jetstream.Stream
	subj   string
	info   *jetstream.ObjectInfo
	next   uint64 // stream sequence to look from
	got    uint32 // chunks read
	n      uint64 // bytes read
	cur    []byte
	h      hash.Hash
	fails  int
}

func (s *Store) natsStore(ctx context.Context, op string, loc location) (jetstream.ObjectStore, error) {
	obs, err := s.cfg.JetStream.ObjectStore(ctx, loc.bucket)
	if err != nil {
		return nil, natsErr(ctx, op, loc.raw, err)
	}
	return obs, nil
}

func (s *Store) openNATS(ctx context.Context, loc location) (*Reader, error) {
	obs, err := s.natsStore(ctx, "open", loc)
	if err != nil {
		return nil, err
	}
	info, err := obs.GetInfo(ctx, loc.key)
	if err != nil {
		return nil, natsErr(ctx, "open", loc.raw, err)
	}
	if info.Opts != nil && info.Opts.Link != nil {
		return nil, newErr("open", loc.raw, ErrRejected, "object is a link; name its target", nil)
	}
	if info.NUID == "" {
		return nil, newErr("open", loc.raw, ErrRejected, "object has no chunks id", nil)
	}
	stream, err := s.cfg.JetStream.Stream(ctx, "OBJ_"+loc.bucket)
	if err != nil {
		return nil, natsErr(ctx, "open", loc.raw, err)
	}
	r := &natsReader{
		s: s, ctx: ctx, raw: loc.raw, stream: stream, info: info, next: 1, h: sha256.New(),
		// The subject layout of the object store protocol (ADR-20): $O.<bucket>.C.<nuid>.
		subj: "$O." + loc.bucket + ".C." + info.NUID,
	}
	return s.newReader(loc.raw, r, int64(info.Size))
}

func (r *natsReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.got == r.info.Chunks {
			return 0, r.finish()
		}
		if err := r.fetch(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

func (r *natsReader) fetch() error {
	for {
		actx, cancel := context.WithTimeout(r.ctx, r.s.cfg.IdleTimeout)
		msg, err := r.stream.GetMsg(actx, r.next, jetstream.WithGetMsgSubject(r.subj))
		cancel()
		if err == nil {
			r.fails = 0
			r.next = msg.Sequence + 1
			r.got++
			r.n += uint64(len(msg.Data))
			if r.n > r.info.Size {
				return newErr("read", r.raw, ErrUnavailable, "object has more data than its size says (replaced while read?)", nil)
			}
			r.h.Write(msg.Data)
			r.cur = msg.Data
			return nil
		}
		if cerr := ctxErr(r.ctx, "read", r.raw); cerr != nil {
			return cerr
		}
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return newErr("read", r.raw, ErrUnavailable, fmt.Sprintf("chunk %d of %d is gone (object replaced or deleted while read)", r.got+1, r.info.Chunks), err)
		}
		if r.fails >= r.s.cfg.Retries {
			return natsErr(r.ctx, "read", r.raw, err)
		}
		if berr := r.s.backoff(r.ctx, r.fails); berr != nil {
			return &Error{Op: "read", URL: redact(r.raw), Err: berr}
		}
		r.fails++
	}
}

func (r *natsReader) finish() error {
	if r.n != r.info.Size {
		return newErr("read", r.raw, ErrUnavailable, fmt.Sprintf("object ended at %d of %d bytes", r.n, r.info.Size), nil)
	}
	want, err := jetstream.DecodeObjectDigest(r.info.Digest)
	if err != nil {
		return newErr("read", r.raw, ErrRejected, "bad object digest", err)
	}
	if !bytes.Equal(r.h.Sum(nil), want) {
		return newErr("read", r.raw, ErrUnavailable, "digest mismatch", jetstream.ErrDigestMismatch)
	}
	return io.EOF
}

func (r *natsReader) Close() error { return nil }

func (s *Store) statNATS(ctx context.Context, loc location) (Info, error) {
	obs, err := s.natsStore(ctx, "stat", loc)
	if err != nil {
		return Info{}, err
	}
	info, err := obs.GetInfo(ctx, loc.key)
	if err != nil {
		return Info{}, natsErr(ctx, "stat", loc.raw, err)
	}
	return Info{Size: int64(info.Size)}, nil
}

func (s *Store) deleteNATS(ctx context.Context, loc location) error {
	obs, err := s.natsStore(ctx, "delete", loc)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := obs.Delete(ctx, loc.key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return natsErr(ctx, "delete", loc.raw, err)
	}
	return nil
}

// natsWriter streams an output into ObjectStore.Put, which runs in a goroutine reading from a
// pipe: a slow server blocks Write. Put publishes the object's info only after all its chunks,
// so nothing is visible before Commit; Abort fails Put's reader, so Put purges its chunks and
// leaves any earlier version under the name intact.
type natsWriter struct {
	raw    string
	pw     *io.PipeWriter
	done   chan struct{}
	err    error // Put's outcome; read after done is closed
	stop   func() bool
	cancel context.CancelFunc // Put's own context
	state  int                // 0 writing, 1 committed, 2 aborted
}

// fullReader fills each Read completely (or to the end of the stream), so Put's chunks are full
// whatever sizes Write is called with.
type fullReader struct{ r io.Reader }

func (f fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // the rest, then EOF on the next call
	}
	return n, err
}

func (s *Store) createNATS(ctx context.Context, loc location, o CreateOptions) (Writer, error) {
	js := s.cfg.JetStream
	obs, err := js.ObjectStore(ctx, loc.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: loc.bucket, Replicas: max(1, s.cfg.ObjectReplicas)})
		if errors.Is(err, jetstream.ErrBucketExists) { // created meanwhile by another worker
			obs, err = js.ObjectStore(ctx, loc.bucket)
		}
	}
	if err != nil {
		return nil, natsErr(ctx, "create", loc.raw, err)
	}
	meta := jetstream.ObjectMeta{Name: loc.key}
	if o.ContentType != "" {
		meta.Headers = nats.Header{"Content-Type": []string{o.ContentType}}
	}
	pr, pw := io.Pipe()
	// Put gets a context of its own: when the caller's ends, the pipe fails instead, so that
	// Put still has a live context to purge its chunks with.
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w := &natsWriter{raw: loc.raw, pw: pw, done: make(chan struct{}), cancel: cancel}
	w.stop = context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		defer close(w.done)
		_, err := obs.Put(pctx, meta, fullReader{pr})
		if err != nil {
			w.err = natsErr(ctx, "write", loc.raw, err)
			pr.CloseWithError(w.err)
			return
		}
		pr.CloseWithError(errors.New("storage: upload finished"))
	}()
	return w, nil
}

func (w *natsWriter) Write(p []byte) (int, error) {
	if w.state != 0 {
		return 0, newErr("write", w.raw, ErrRejected, "output already committed or aborted", nil)
	}
	n, err := w.pw.Write(p)
	if err != nil {
		<-w.done
		if w.err != nil {
			return n, w.err
		}
		return n, newErr("write", w.raw, ErrUnavailable, "", err)
	}
	return n, nil
}

func (w *natsWriter) Commit(ctx context.Context) error {
	switch w.state {
	case 1:
		return nil
	case 2:
		return newErr("commit", w.raw, ErrRejected, "output already aborted", nil)
	}
	if !w.stop() {
		// The caller's context of Create ended: the upload is being aborted.
		<-w.done
		w.cancel()
		if w.err == nil {
			w.err = newErr("commit", w.raw, nil, "upload canceled", context.Canceled)
		}
		return w.err
	}
	_ = w.pw.Close()
	select {
	case <-w.done:
	case <-ctx.Done():
		// Whether the object was published is unknown: Put may have sent its info already.
		w.cancel()
		<-w.done
		return &Error{Op: "commit", URL: redact(w.raw), Msg: "canceled; the output may or may not be in place", Err: ctx.Err()}
	}
	w.cancel()
	if w.err != nil {
		return w.err
	}
	w.state = 1
	return nil
}

func (w *natsWriter) Abort() {
	if w.state != 0 {
		return
	}
	w.state = 2
	w.stop()
	w.pw.CloseWithError(errAborted)
	<-w.done
	w.cancel()
}
