package storage

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const userAgent = "transcoder-storage/1"

// statusKind classifies an HTTP status that is not a success.
func statusKind(code int) error {
	switch {
	case code == http.StatusNotFound || code == http.StatusGone:
		return ErrNotFound
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return ErrForbidden
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return ErrUnavailable
	}
	return ErrRejected // other 4xx, unfollowed 3xx, 1xx
}

func statusErr(op, raw string, resp *http.Response) error {
	drain(resp)
	msg := "HTTP " + resp.Status
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		msg += " (redirect not followed)"
	}
	return newErr(op, raw, statusKind(resp.StatusCode), msg, nil)
}

// drain reads a little of a body (so the connection can be reused) and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

// httpErr classifies an error of client.Do.
func httpErr(ctx context.Context, op, raw string, err error) error {
	if cerr := ctxErr(ctx, op, raw); cerr != nil {
		return cerr
	}
	var ae *addrError
	if errors.As(err, &ae) {
		return &Error{Op: op, URL: redact(raw), Err: ae}
	}
	var se *Error
	if errors.As(err, &se) { // from checkRedirect
		return &Error{Op: op, URL: redact(raw), Kind: se.Kind, Msg: se.Msg + " (at " + se.URL + ")"}
	}
	// The url.Error's text would repeat the URL with its query: keep only the cause.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	if errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie) {
		return newErr(op, raw, ErrRejected, "TLS certificate not accepted", err)
	}
	// A name the DNS says does not exist (NXDOMAIN) will not start to exist on a retry
	// minutes later; a resolver that timed out or failed might answer next time.
	var de *net.DNSError
	if errors.As(err, &de) && de.IsNotFound {
		return newErr(op, raw, ErrNotFound, "host "+de.Name+" not found (DNS)", err)
	}
	return newErr(op, raw, ErrUnavailable, "", err)
}

func (s *Store) newRequest(ctx context.Context, method string, u *url.URL, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", userAgent)
	// The bytes as stored: ranges and sizes refer to them, and media does not compress.
	req.Header.Set("Accept-Encoding", "identity")
	return req, nil
}

// httpSource is one HTTP input: the validators of its first response tell whether a resumed
// transfer still reads the same object.
type httpSource struct {
	s       *Store
	loc     location
	size    int64
	etag    string
	lastMod string
	opened  bool
}

func (s *Store) openHTTP(ctx context.Context, loc location) (*Reader, error) {
	h := &httpSource{s: s, loc: loc, size: -1}
	rr, err := s.newResumeReader(ctx, loc.raw, h.open, func() int64 { return h.size })
	if err != nil {
		return nil, err
	}
	return s.newReader(loc.raw, rr, h.size)
}

func (h *httpSource) open(ctx context.Context, off int64) (io.ReadCloser, int64, error) {
	op := "read"
	if !h.opened {
		op = "open"
	}
	req, err := h.s.newRequest(ctx, http.MethodGet, h.loc.u, nil)
	if err != nil {
		return nil, 0, newErr(op, h.loc.raw, ErrRejected, "", err)
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := h.s.client.Do(req)
	if err != nil {
		return nil, 0, httpErr(ctx, op, h.loc.raw, err)
	}
	changed := func(why string) (io.ReadCloser, int64, error) {
		drain(resp)
		return nil, 0, newErr(op, h.loc.raw, ErrUnavailable, "input changed while it was read ("+why+")", nil)
	}
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if !h.opened {
		if resp.StatusCode != http.StatusOK {
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				drain(resp)
				return nil, 0, newErr(op, h.loc.raw, ErrRejected, "unexpected HTTP "+resp.Status+" to a GET", nil)
			}
			return nil, 0, statusErr(op, h.loc.raw, resp)
		}
		h.size, h.etag, h.lastMod, h.opened = resp.ContentLength, etag, lastMod, true
		return resp.Body, 0, nil
	}
	if (h.etag != "" && etag != "" && etag != h.etag) || (h.etag == "" && h.lastMod != "" && lastMod != "" && lastMod != h.lastMod) {
		return changed("its ETag or Last-Modified differs")
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != off {
			drain(resp)
			return nil, 0, newErr(op, h.loc.raw, ErrRejected, fmt.Sprintf("server answered bytes=%d- with Content-Range %q", off, resp.Header.Get("Content-Range")), nil)
		}
		if h.size >= 0 && total >= 0 && total != h.size {
			return changed(fmt.Sprintf("size %d, was %d", total, h.size))
		}
		return resp.Body, 0, nil
	case http.StatusOK:
		// The server ignores Range: read it again from the start, discarding what was read.
		if h.size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != h.size {
			return changed(fmt.Sprintf("size %d, was %d", resp.ContentLength, h.size))
		}
		if off > 0 && h.etag == "" && h.lastMod == "" && h.size < 0 {
			drain(resp)
			return nil, 0, newErr(op, h.loc.raw, ErrUnavailable, "transfer broke and the server supports neither ranges nor validators to resume it safely", nil)
		}
		return resp.Body, off, nil
	}
	return nil, 0, statusErr(op, h.loc.raw, resp)
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, false
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, false
	}
	a, _, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func (s *Store) statHTTP(ctx context.Context, loc location) (Info, error) {
	req, err := s.newRequest(ctx, http.MethodHead, loc.u, nil)
	if err != nil {
		return Info{}, newErr("stat", loc.raw, ErrRejected, "", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return Info{}, httpErr(ctx, "stat", loc.raw, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return Info{}, statusErr("stat", loc.raw, resp)
	}
	drain(resp)
	return Info{Size: resp.ContentLength}, nil
}

func (s *Store) deleteHTTP(ctx context.Context, loc location) error {
	req, err := s.newRequest(ctx, http.MethodDelete, loc.u, nil)
	if err != nil {
		return newErr("delete", loc.raw, ErrRejected, "", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return httpErr(ctx, "delete", loc.raw, err)
	}
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone || resp.StatusCode >= 200 && resp.StatusCode < 300 {
		drain(resp)
		return nil
	}
	return statusErr("delete", loc.raw, resp)
}

// errAborted is what the server's side of an aborted upload reads.
var errAborted = errors.New("storage: output aborted")

// httpWriter streams an output as the chunked body of one PUT: Write feeds a pipe that the
// transport reads, so a slow server blocks Write. Commit ends the body and requires a 2xx
// answer; Abort cancels the request, so the server never sees the body's end.
type httpWriter struct {
	raw    string
	pw     *io.PipeWriter
	cancel context.CancelFunc
	done   chan struct{}
	err    error // the request's outcome; read after done is closed
	idleD  time.Duration
	idle   *time.Timer
	fired  atomic.Bool
	ending atomic.Bool // the body was ended by Commit
	state  int         // 0 writing, 1 committed, 2 aborted
}

func (s *Store) createHTTP(ctx context.Context, loc location, o CreateOptions) (Writer, error) {
	rctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req, err := s.newRequest(rctx, http.MethodPut, loc.u, pr)
	if err != nil {
		cancel()
		return nil, newErr("create", loc.raw, ErrRejected, "", err)
	}
	req.ContentLength = -1 // chunked
	if o.ContentType != "" {
		req.Header.Set("Content-Type", o.ContentType)
	}
	w := &httpWriter{raw: loc.raw, pw: pw, cancel: cancel, done: make(chan struct{}), idleD: s.cfg.IdleTimeout}
	w.idle = time.AfterFunc(time.Hour, func() { w.fired.Store(true); cancel() })
	w.idle.Stop()
	go w.run(s.client, req, pr)
	return w, nil
}

func (w *httpWriter) run(client *http.Client, req *http.Request, pr *io.PipeReader) {
	defer close(w.done)
	resp, err := client.Do(req)
	switch {
	case err != nil:
		if w.fired.Load() {
			w.err = newErr("write", w.raw, ErrUnavailable, fmt.Sprintf("no progress for %s", w.idleD), nil)
		} else {
			w.err = httpErr(req.Context(), "write", w.raw, err)
		}
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		w.err = statusErr("commit", w.raw, resp)
	case resp.Request != nil && resp.Request.Method != http.MethodPut:
		// A client given in Config followed a redirect and turned the PUT into a GET.
		drain(resp)
		w.err = newErr("commit", w.raw, ErrRejected, "the upload was redirected", nil)
	case !w.ending.Load():
		drain(resp)
		w.err = newErr("write", w.raw, ErrRejected, "server answered HTTP "+resp.Status+" before the upload ended", nil)
	default:
		drain(resp)
	}
	if w.err != nil {
		pr.CloseWithError(w.err)
	} else {
		pr.CloseWithError(errors.New("storage: upload finished"))
	}
}

func (w *httpWriter) Write(p []byte) (int, error) {
	if w.state != 0 {
		return 0, newErr("write", w.raw, ErrRejected, "output already committed or aborted", nil)
	}
	w.fired.Store(false)
	w.idle.Reset(w.idleD)
	n, err := w.pw.Write(p)
	w.idle.Stop()
	if err != nil {
		<-w.done // the request has failed or ended: its outcome is the better error
		if w.err != nil {
			return n, w.err
		}
		return n, newErr("write", w.raw, ErrUnavailable, "", err)
	}
	return n, nil
}

func (w *httpWriter) Commit(ctx context.Context) error {
	switch w.state {
	case 1:
		return nil
	case 2:
		return newErr("commit", w.raw, ErrRejected, "output already aborted", nil)
	}
	w.ending.Store(true)
	_ = w.pw.Close()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
		return &Error{Op: "commit", URL: redact(w.raw), Err: ctx.Err()}
	}
	if w.err != nil {
		return w.err
	}
	w.state = 1
	w.cancel()
	return nil
}

func (w *httpWriter) Abort() {
	if w.state != 0 {
		return
	}
	w.state = 2
	w.cancel()
	w.pw.CloseWithError(errAborted)
	<-w.done
	w.idle.Stop()
}
