package storage

import (
	"context"
	"errors"
	"net/url"
	"strings"
)

// The classes of storage errors. Every error this package returns for a failed operation
// matches (errors.Is) at most one of them, or carries the caller's context error; the worker maps
// them to job failure classes. ErrForbiddenAddress also matches ErrForbidden.
var (
	// ErrNotFound: the input or object does not exist (HTTP 404/410, missing file, key or bucket).
	ErrNotFound = errors.New("storage: not found")
	// ErrForbidden: the server refused access (HTTP 401/403, S3 AccessDenied, file permissions).
	ErrForbidden = errors.New("storage: access denied")
	// ErrForbiddenAddress: the connection was refused by the address policy (private, loopback,
	// link-local, metadata, ... addresses) before any byte was sent. Permanent.
	ErrForbiddenAddress error = &childError{msg: "storage: address not allowed", parent: ErrForbidden}
	// ErrNotAllowedPath: a local path outside Config.FileRoots, a symlink escaping them, or "..".
	ErrNotAllowedPath = errors.New("storage: path not allowed")
	// ErrUnsupportedScheme: a URL scheme this store does not serve (or is not configured for).
	ErrUnsupportedScheme = errors.New("storage: unsupported URL scheme")
	// ErrTooLarge: the input is larger than Config.MaxInputBytes.
	ErrTooLarge = errors.New("storage: input too large")
	// ErrRejected: the request is wrong in a way a retry cannot fix (other HTTP 4xx, a bad URL,
	// too many redirects, an input that changed while it was read, ...). Permanent.
	ErrRejected = errors.New("storage: request rejected")
	// ErrUnavailable: a transient failure (connection refused or dropped, timeouts, HTTP 5xx or
	// 429, resumes exhausted). Retrying the job later may succeed.
	ErrUnavailable = errors.New("storage: temporarily unavailable")
)

// Transient reports whether err is a transient storage failure (ErrUnavailable): the job may be
// retried later. Cancellation by the caller's context is not transient by this definition; the
// caller knows why it canceled.
func Transient(err error) bool { return errors.Is(err, ErrUnavailable) }

// childError is a sentinel that also matches a broader one.
type childError struct {
	msg    string
	parent error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.parent }

// Error is the error type of failed operations: what was done, on which URL (with any query
// string and password redacted), why, its class (Kind, one of the sentinels) and the cause.
type Error struct {
	Op   string // "open", "create", "write", "commit", "stat", "delete"
	URL  string // redacted
	Msg  string // human explanation; may be empty
	Kind error  // one of the Err* sentinels, or nil (e.g. the caller's context ended)
	Err  error  // the underlying cause, may be nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("storage: ")
	b.WriteString(e.Op)
	if e.URL != "" {
		b.WriteString(" ")
		b.WriteString(e.URL)
	}
	b.WriteString(": ")
	switch {
	case e.Msg != "":
		b.WriteString(e.Msg)
		if e.Err != nil {
			b.WriteString(": ")
			b.WriteString(strings.TrimPrefix(e.Err.Error(), "storage: "))
		}
	case e.Err != nil:
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "storage: "))
	case e.Kind != nil:
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "storage: "))
	}
	return b.String()
}

// Unwrap exposes both the class and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func newErr(op, rawURL string, kind error, msg string, cause error) *Error {
	return &Error{Op: op, URL: redact(rawURL), Msg: msg, Kind: kind, Err: cause}
}

// ctxErr returns the context's error wrapped for op, or nil when ctx is still live: an
// operation that failed because its caller canceled it reports that, unclassified.
func ctxErr(ctx context.Context, op, rawURL string) error {
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, URL: redact(rawURL), Err: err}
	}
	return nil
}

// redact drops the password and the query (presigned URLs carry credentials there) from a URL
// for messages.
func redact(raw string) string {
	if strings.HasPrefix(raw, "/") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			return raw[:i]
		}
		return raw
	}
	if u.User == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery {
		return raw
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}
