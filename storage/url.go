package storage

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// MaxURL bounds the length of any URL or path; job validation applies the same bound.
const MaxURL = 4096

const supported = "file:///abs/path (or /abs/path), http://, https://, nats://BUCKET/KEY, s3://BUCKET/KEY"

// ffmpegProtocols are the ffmpeg URL forms a job could try to smuggle in, named so the error
// says what was refused. Every other unknown scheme is refused too.
var ffmpegProtocols = []string{"concat:", "concatf:", "subfile,", "subfile:", "data:", "pipe:", "fd:", "crypto:", "crypto+", "cache:", "async:", "tee:"}

var (
	natsBucketRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	s3BucketRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

// FFmpegProtocol returns the name of the ffmpeg protocol (concat, subfile, data, pipe, ...)
// that raw starts with, if any: ffmpeg would read it as that protocol rather than a file or
// URL, so no input or output may start with one.
func FFmpegProtocol(raw string) (string, bool) {
	lower := strings.ToLower(raw)
	for _, p := range ffmpegProtocols {
		if strings.HasPrefix(lower, p) {
			return strings.TrimRight(p, ":,+"), true
		}
	}
	return "", false
}

// CheckBucket checks the bucket of a nats:// or s3:// URL by the naming rules of its store
// (JetStream object store names; S3 bucket names), or returns nil for other schemes.
func CheckBucket(scheme, bucket string) error {
	switch {
	case scheme == "nats" && !natsBucketRe.MatchString(bucket):
		return fmt.Errorf("bad bucket name %q: letters, digits, '-' and '_' only", bucket)
	case scheme == "s3" && (!s3BucketRe.MatchString(bucket) || strings.Contains(bucket, "..")):
		return fmt.Errorf("bad bucket name %q: 3-63 lowercase letters, digits, '.' and '-'", bucket)
	}
	return nil
}

// location is a parsed, validated URL.
type location struct {
	raw    string
	scheme string   // file, http, https, nats, s3
	path   string   // file: absolute, cleaned
	u      *url.URL // http, https
	bucket string   // nats, s3
	key    string   // nats, s3 (may be empty only for a Join prefix)
}

// Check validates a URL's syntax and scheme without any I/O, for job validation: the returned
// error (an *Error matching ErrRejected or ErrUnsupportedScheme) says what is wrong. It does
// not know a Store's configuration; Store.Check also applies FileRoots and the configured
// schemes.
func Check(rawURL string) error {
	_, err := parse("check", rawURL, false)
	return err
}

// parse validates rawURL. A directory (a trailing '/') is accepted only when dir is set.
func parse(op, raw string, dir bool) (location, error) {
	bad := func(kind error, format string, a ...any) (location, error) {
		return location{}, newErr(op, raw, kind, fmt.Sprintf(format, a...), nil)
	}
	if raw == "" {
		return bad(ErrRejected, "empty URL")
	}
	if len(raw) > MaxURL {
		return location{}, newErr(op, raw[:64]+"...", ErrRejected, fmt.Sprintf("longer than %d bytes", MaxURL), nil)
	}
	if strings.ContainsFunc(raw, unicode.IsControl) {
		return location{}, &Error{Op: op, URL: fmt.Sprintf("%q", raw), Kind: ErrRejected, Msg: "contains control characters"}
	}
	if strings.HasPrefix(raw, "-") {
		return bad(ErrRejected, "must not start with '-' (an ffmpeg option)")
	}
	if p, ok := FFmpegProtocol(raw); ok {
		return bad(ErrUnsupportedScheme, "ffmpeg protocol %q is not allowed (supported: %s)", p, supported)
	}
	lower := strings.ToLower(raw)
	if strings.HasPrefix(lower, "file:") && !strings.HasPrefix(lower, "file://") {
		return bad(ErrRejected, "ffmpeg-style file: path is not allowed (use file:///abs/path)")
	}
	if strings.HasPrefix(raw, "/") {
		return parseFilePath(op, raw, raw, dir)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if asURLError(err, &ue) {
			err = ue.Err
		}
		return location{}, newErr(op, raw, ErrRejected, "not a valid URL", err)
	}
	if u.Scheme == "" {
		return bad(ErrRejected, "neither an absolute path nor a URL (supported: %s)", supported)
	}
	if u.Opaque != "" {
		return bad(ErrRejected, "%s: URL must start with %s://", u.Scheme, strings.ToLower(u.Scheme))
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return bad(ErrRejected, "file URLs must not name a host (use file:///abs/path)")
		}
		if u.User != nil {
			return bad(ErrRejected, "file URLs must not hold user information")
		}
		if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			return bad(ErrRejected, "file URL must not have a query or fragment")
		}
		if !strings.HasPrefix(u.Path, "/") {
			return bad(ErrRejected, "file URL must hold an absolute path")
		}
		return parseFilePath(op, raw, u.Path, dir)
	case "http", "https":
		if u.Host == "" || u.Hostname() == "" {
			return bad(ErrRejected, "%s URL has no host", scheme)
		}
		if u.User != nil {
			return bad(ErrRejected, "credentials in the URL are not allowed (they would appear in events and logs; use a presigned URL)")
		}
		if p := u.Port(); p != "" && (len(p) > 5 || p == "0" || atoiPort(p) > 65535) {
			return bad(ErrRejected, "bad port %q", p)
		}
		u.Scheme = scheme
		u.Fragment, u.RawFragment = "", ""
		return location{raw: raw, scheme: scheme, u: u}, nil
	case "nats", "s3":
		if u.User != nil || u.Port() != "" {
			return bad(ErrRejected, "%s://BUCKET/KEY must not hold user information or a port", scheme)
		}
		if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
			return bad(ErrRejected, "%s URL must not have a query or fragment", scheme)
		}
		bucket := u.Host
		if err := CheckBucket(scheme, bucket); err != nil {
			return bad(ErrRejected, "%v", err)
		}
		key := strings.TrimPrefix(u.Path, "/")
		if msg := checkKey(key, dir); msg != "" {
			return bad(ErrRejected, "%s", msg)
		}
		return location{raw: raw, scheme: scheme, bucket: bucket, key: key}, nil
	default:
		return bad(ErrUnsupportedScheme, "scheme %q is not supported (supported: %s)", u.Scheme, supported)
	}
}

func asURLError(err error, target **url.Error) bool {
	ue, ok := err.(*url.Error) //nolint:errorlint // url.Parse returns it unwrapped
	if ok {
		*target = ue
	}
	return ok
}

func atoiPort(p string) int {
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return 1 << 30
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func parseFilePath(op, raw, p string, dir bool) (location, error) {
	if strings.ContainsFunc(p, unicode.IsControl) {
		return location{}, newErr(op, raw, ErrRejected, "contains control characters", nil)
	}
	if strings.ContainsRune(p, 0) {
		return location{}, newErr(op, raw, ErrRejected, "contains a NUL byte", nil)
	}
	if hasDotDot(p) {
		return location{}, newErr(op, raw, ErrNotAllowedPath, `".." is not allowed in paths`, nil)
	}
	clean := filepath.Clean(p)
	if strings.HasSuffix(p, "/") != dir || clean == "/" && !dir {
		if dir {
			return location{}, newErr(op, raw, ErrRejected, "a prefix must name a directory (end with '/')", nil)
		}
		return location{}, newErr(op, raw, ErrRejected, "names a directory, not a file", nil)
	}
	return location{raw: raw, scheme: "file", path: clean}, nil
}

func hasDotDot(p string) bool {
	for s := range strings.SplitSeq(p, "/") {
		if s == ".." {
			return true
		}
	}
	return false
}

// checkKey validates an object key (nats, s3) and returns what is wrong, or "".
func checkKey(key string, dir bool) string {
	switch {
	case len(key) > 1024:
		return "key longer than 1024 bytes"
	case strings.ContainsFunc(key, unicode.IsControl):
		return "key contains control characters"
	case hasDotDot(key):
		return `".." is not allowed in keys`
	case dir && key != "" && !strings.HasSuffix(key, "/"):
		return "a prefix must end with '/'"
	case !dir && key == "":
		return "missing object key (BUCKET/KEY)"
	case !dir && strings.HasSuffix(key, "/"):
		return "key must not end with '/'"
	}
	return ""
}

// Join appends a relative name to a prefix URL naming a directory ("file:///out/hls/",
// "/out/hls/", "nats://bucket/prefix/", "s3://bucket/prefix/", "https://host/up/"); it is used
// for HLS segments and playlists. name may hold '/' but not "..", a leading '/', or control
// characters. The result passes Check.
func Join(prefix, name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || hasDotDot(name) || strings.ContainsFunc(name, unicode.IsControl) || strings.HasSuffix(name, "/") {
		return "", newErr("join", prefix, ErrRejected, fmt.Sprintf("bad name %q: must be relative, without '..', control characters or a trailing '/'", name), nil)
	}
	loc, err := parse("join", prefix, true)
	if err != nil {
		return "", err
	}
	var out string
	switch loc.scheme {
	case "file":
		if strings.HasPrefix(prefix, "/") {
			out = prefix + name
		} else {
			out = (&url.URL{Scheme: "file", Path: loc.path + "/" + name}).String()
			if loc.path == "/" {
				out = (&url.URL{Scheme: "file", Path: "/" + name}).String()
			}
		}
	case "http", "https":
		u := *loc.u
		if u.RawQuery != "" || u.ForceQuery {
			return "", newErr("join", prefix, ErrRejected, "a prefix must not have a query", nil)
		}
		if !strings.HasSuffix(u.Path, "/") {
			return "", newErr("join", prefix, ErrRejected, "a prefix must end with '/'", nil)
		}
		u.Path += name
		u.RawPath = ""
		out = u.String()
	case "nats", "s3":
		out = (&url.URL{Scheme: loc.scheme, Host: loc.bucket, Path: "/" + loc.key + name}).String()
	}
	if _, err := parse("join", out, false); err != nil {
		return "", err
	}
	return out, nil
}
