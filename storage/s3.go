package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func (s *Store) initS3(cfg *Config) error {
	c := &cfg.S3
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("storage: S3.%s: %s", field, fmt.Sprintf(format, a...))
	}
	if c.Endpoint == "" {
		return nil
	}
	if strings.Contains(c.Endpoint, "://") || strings.ContainsAny(c.Endpoint, "/?#@ ") {
		return bad("Endpoint", "%q must be host or host:port (no scheme or path; see Secure)", c.Endpoint)
	}
	if _, port, err := net.SplitHostPort(c.Endpoint); err == nil && (port == "" || atoiPort(port) > 65535 || port == "0") {
		return bad("Endpoint", "%q: bad port", c.Endpoint)
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = DefaultS3PartSize
	case c.PartSize < MinS3PartSize:
		return bad("PartSize", "%d is less than the S3 minimum of 5 MiB", c.PartSize)
	case c.PartSize > maxS3PartSize:
		return bad("PartSize", "%d is more than the S3 maximum of 5 GiB", c.PartSize)
	}
	var creds *credentials.Credentials
	switch {
	case c.AccessKey != "" || c.SecretKey != "":
		if c.AccessKey == "" || c.SecretKey == "" {
			return bad("AccessKey", "AccessKey and SecretKey go together")
		}
		creds = credentials.NewStaticV4(c.AccessKey, c.SecretKey, c.SessionToken)
	default:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{},
			&credentials.FileMinioClient{},
		})
	}
	// The endpoint is operator configuration: no address policy, but the same timeouts.
	tr := newTransport(*cfg, nil)
	client, err := minio.New(c.Endpoint, &minio.Options{
		Creds: creds, Secure: c.Secure, Region: c.Region, Transport: tr,
		MaxRetries: max(cfg.Retries, 1),
	})
	if err != nil {
		return bad("Endpoint", "%v", err)
	}
	s.s3 = &minio.Core{Client: client}
	s.s3tr = tr
	return nil
}

// s3Err classifies a minio-go error.
func s3Err(ctx context.Context, op, raw string, err error) error {
	if cerr := ctxErr(ctx, op, raw); cerr != nil {
		return cerr
	}
	er := minio.ToErrorResponse(err)
	switch er.Code {
	case "NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound":
		return newErr(op, raw, ErrNotFound, "", err)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled", "AccountProblem":
		return newErr(op, raw, ErrForbidden, "", err)
	case "PreconditionFailed":
		return newErr(op, raw, ErrUnavailable, "object changed while it was read", err)
	case "SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable":
		return newErr(op, raw, ErrUnavailable, "", err)
	}
	switch code := er.StatusCode; {
	case code == 0:
		return newErr(op, raw, ErrUnavailable, "", err)
	case code >= 400:
		return newErr(op, raw, statusKind(code), "", err)
	}
	return newErr(op, raw, ErrUnavailable, "", err)
}

// s3Source is one S3 input; resumed reads ask for the same ETag, so a replaced object is noticed.
type s3Source struct {
	s      *Store
	loc    location
	size   int64
	etag   string
	opened bool
}

func (s *Store) openS3(ctx context.Context, loc location) (*Reader, error) {
	src := &s3Source{s: s, loc: loc, size: -1}
	rr, err := s.newResumeReader(ctx, loc.raw, src.open, func() int64 { return src.size })
	if err != nil {
		return nil, err
	}
	return s.newReader(loc.raw, rr, src.size)
}

func (src *s3Source) open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	op := "read"
	if !src.opened {
		op = "open"
	}
	var opts minio.GetObjectOptions
	if off > 0 {
		if err := opts.SetRange(off, 0); err != nil {
			return nil, 0, newErr(op, src.loc.raw, ErrRejected, "", err)
		}
	}
	if src.etag != "" {
		if err := opts.SetMatchETag(src.etag); err != nil {
			return nil, 0, newErr(op, src.loc.raw, ErrRejected, "", err)
		}
	}
	body, info, _, err := src.s.s3.GetObject(ctx, src.loc.bucket, src.loc.key, opts)
	if err != nil {
		return nil, 0, s3Err(ctx, op, src.loc.raw, err)
	}
	if !src.opened {
		src.size, src.etag, src.opened = info.Size, info.ETag, true
	}
	return body, 0, nil
}

func (s *Store) statS3(ctx context.Context, loc location) (Info, error) {
	info, err := s.s3.StatObject(ctx, loc.bucket, loc.key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s3Err(ctx, "stat", loc.raw, err)
	}
	return Info{Size: info.Size}, nil
}

func (s *Store) deleteS3(ctx context.Context, loc location) error {
	err := s.s3.RemoveObject(ctx, loc.bucket, loc.key, minio.RemoveObjectOptions{})
	if err != nil {
		if e := s3Err(ctx, "delete", loc.raw, err); !errors.Is(e, ErrNotFound) || minio.ToErrorResponse(err).Code == "NoSuchBucket" {
			return e
		}
	}
	return nil
}

// s3Writer uploads an output as a multipart upload: each part is spooled to a temporary file
// (unlinked at once, so a crash leaves nothing behind) of at most PartSize and uploaded when
// full, which blocks Write (backpressure). Commit uploads the last part and completes the upload
// (an output smaller than one part is a single PutObject); nothing is visible before. Abort
// aborts the upload, which discards its parts.
type s3Writer struct {
	s        *Store
	ctx      context.Context
	loc      location
	opts     minio.PutObjectOptions
	f        *os.File
	n        int64 // bytes in the spooled part
	uploadID string
	parts    []minio.CompletePart
	err      error // sticky
	state    int   // 0 writing, 1 committed, 2 aborted
}

func (s *Store) createS3(ctx context.Context, loc location, o CreateOptions) (Writer, error) {
	ok, err := s.s3.BucketExists(ctx, loc.bucket)
	if err != nil {
		return nil, s3Err(ctx, "create", loc.raw, err)
	}
	if !ok {
		return nil, newErr("create", loc.raw, ErrNotFound, "bucket "+loc.bucket+" does not exist", nil)
	}
	f, err := os.CreateTemp(s.cfg.TempDir, ".s3part-")
	if err != nil {
		return nil, newErr("create", loc.raw, osKind(err), "spool file", NoSpace(err, "multipart spool", s.cfg.TempDir))
	}
	_ = os.Remove(f.Name())
	return &s3Writer{s: s, ctx: ctx, loc: loc, f: f, opts: minio.PutObjectOptions{ContentType: o.ContentType}}, nil
}

func (w *s3Writer) Write(p []byte) (int, error) {
	if w.state != 0 {
		return 0, newErr("write", w.loc.raw, ErrRejected, "output already committed or aborted", nil)
	}
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		k := int(min(w.s.cfg.S3.PartSize-w.n, int64(len(p))))
		m, err := w.f.Write(p[:k])
		written += m
		w.n += int64(m)
		if err != nil {
			w.err = newErr("write", w.loc.raw, osKind(err), "spool file", NoSpace(err, "multipart spool", w.s.cfg.TempDir))
			return written, w.err
		}
		p = p[k:]
		if w.n == w.s.cfg.S3.PartSize {
			if err := w.uploadPart(w.ctx); err != nil {
				w.err = err
				return written, err
			}
		}
	}
	return written, nil
}

// uploadPart uploads the spooled part and empties the spool file.
func (w *s3Writer) uploadPart(ctx context.Context) error {
	c := w.s.s3
	if w.uploadID == "" {
		id, err := c.NewMultipartUpload(ctx, w.loc.bucket, w.loc.key, w.opts)
		if err != nil {
			return s3Err(ctx, "write", w.loc.raw, err)
		}
		w.uploadID = id
	}
	num := len(w.parts) + 1
	part, err := c.PutObjectPart(ctx, w.loc.bucket, w.loc.key, w.uploadID, num, io.NewSectionReader(w.f, 0, w.n), w.n, minio.PutObjectPartOptions{})
	if err != nil {
		return s3Err(ctx, "write", w.loc.raw, err)
	}
	w.parts = append(w.parts, minio.CompletePart{PartNumber: num, ETag: part.ETag})
	if err := w.f.Truncate(0); err != nil {
		return newErr("write", w.loc.raw, osKind(err), "spool file", err)
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return newErr("write", w.loc.raw, osKind(err), "spool file", err)
	}
	w.n = 0
	return nil
}

func (w *s3Writer) Commit(ctx context.Context) error {
	switch w.state {
	case 1:
		return nil
	case 2:
		return newErr("commit", w.loc.raw, ErrRejected, "output already aborted", nil)
	}
	if w.err != nil {
		return w.err
	}
	if err := ctxErr(w.ctx, "commit", w.loc.raw); err != nil {
		return err // the upload's context ended: not completed
	}
	c := w.s.s3
	if w.uploadID == "" {
		if _, err := c.PutObject(ctx, w.loc.bucket, w.loc.key, io.NewSectionReader(w.f, 0, w.n), w.n, "", "", w.opts); err != nil {
			return s3Err(ctx, "commit", w.loc.raw, err)
		}
	} else {
		if w.n > 0 {
			if err := w.uploadPart(ctx); err != nil {
				return err
			}
		}
		if _, err := c.CompleteMultipartUpload(ctx, w.loc.bucket, w.loc.key, w.uploadID, w.parts, w.opts); err != nil {
			return s3Err(ctx, "commit", w.loc.raw, err)
		}
	}
	w.state = 1
	_ = w.f.Close()
	return nil
}

func (w *s3Writer) Abort() {
	if w.state != 0 {
		return
	}
	w.state = 2
	_ = w.f.Close()
	if w.uploadID != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), 30*time.Second)
		_ = w.s.s3.AbortMultipartUpload(ctx, w.loc.bucket, w.loc.key, w.uploadID)
		cancel()
	}
}
