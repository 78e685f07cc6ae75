package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultConnectTimeout        = 10 * time.Second
	DefaultResponseHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout           = 60 * time.Second
	DefaultRetries               = 5
	DefaultRetryBackoff          = 500 * time.Millisecond
	DefaultMaxInputBytes         = int64(64) << 30
	DefaultS3PartSize            = int64(16) << 20
	MinS3PartSize                = int64(5) << 20
	maxS3PartSize                = int64(5) << 30
	maxRetryBackoff              = 10 * time.Second
)

// Config configures a Store. The zero value is usable: local files anywhere, HTTP(S) to public
// addresses only, no nats:// (no JetStream) and no s3:// (no endpoint).
type Config struct {
	// FileRoots: file:// URLs and absolute paths must resolve (after resolving the symlinks of
	// the part that exists, and with no "..") inside one of these directories. Default ["/"]
	// (any absolute path). A symlink leading out of every root is refused with
	// ErrNotAllowedPath.
	FileRoots []string
	// AllowPrivateNetworks permits HTTP(S) connections to loopback, private (RFC 1918, ULA),
	// link-local, CGNAT, reserved and other non-global addresses. Cloud metadata addresses
	// (169.254.169.254, fd00:ec2::254, ...) are refused even then.
	AllowPrivateNetworks bool
	// HTTPClient, when set, is used as it is for http(s):// (the address policy is then the
	// client's business). Default: a client built here with the policy-checking dialer, no
	// proxy, no transparent decompression, and at most 5 redirects to http(s) only.
	HTTPClient *http.Client
	// ConnectTimeout bounds a TCP connect and TLS handshake (default 10s);
	// ResponseHeaderTimeout the wait for response headers after the request was sent (30s).
	ConnectTimeout, ResponseHeaderTimeout time.Duration
	// IdleTimeout: an input read, or an output write, that makes no progress for this long
	// fails (default 60s). Inputs then resume (see Retries).
	IdleTimeout time.Duration
	// Retries is how many times in a row an input is resumed (Range: bytes=N-) after a dropped
	// connection, a short body or an idle timeout without progress in between (default 5;
	// negative: never).
	Retries int
	// RetryBackoff is the first delay before a resume; it doubles up to 10s (default 500ms).
	RetryBackoff time.Duration
	// MaxInputBytes: larger inputs (by their announced size or as read) fail with ErrTooLarge
	// (default 64 GiB).
	MaxInputBytes int64
	// JetStream serves nats://BUCKET/KEY (JetStream object store). Nil: nats:// is refused.
	JetStream jetstream.JetStream
	// ObjectReplicas is the replica count of object store buckets this store creates (default
	// 1; 3 on a cluster, so that an output survives the loss of a server).
	ObjectReplicas int
	// S3 serves s3://BUCKET/KEY. Without an Endpoint, s3:// is refused.
	S3 S3Config
	// TempDir holds the spooled parts of S3 uploads (default os.TempDir()).
	TempDir string
}

// S3Config configures the S3-compatible endpoint. The endpoint is operator configuration and
// is not subject to the HTTP address policy.
type S3Config struct {
	Endpoint string // "host:port" (no scheme); empty disables s3://
	Region   string
	Secure   bool // HTTPS
	// PartSize is the multipart upload part size (default 16 MiB, at least 5 MiB, at most
	// 5 GiB). Each part is spooled to a file in TempDir, never to memory.
	PartSize int64
	// AccessKey and SecretKey (and SessionToken), when set, are used as they are. Otherwise
	// credentials come from minio-go's chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and
	// AWS_SESSION_TOKEN), MINIO_ACCESS_KEY/MINIO_SECRET_KEY (MINIO_ROOT_USER/...),
	// ~/.aws/credentials (AWS_PROFILE), ~/.mc/config.json.
	AccessKey, SecretKey, SessionToken string
}

// Store opens inputs and creates outputs by URL. It is safe for concurrent use.
type Store struct {
	cfg       Config
	roots     []string // resolved
	policy    *netPolicy
	client    *http.Client
	transport *http.Transport // ours, or nil when the client was given
	s3        *minio.Core
	s3tr      *http.Transport
}

// New validates cfg (naming the bad field) and builds a Store.
func New(cfg Config) (*Store, error) {
	bad := func(field, format string, a ...any) (*Store, error) {
		return nil, fmt.Errorf("storage: %s: %s", field, fmt.Sprintf(format, a...))
	}
	if len(cfg.FileRoots) == 0 {
		cfg.FileRoots = []string{"/"}
	}
	s := &Store{policy: &netPolicy{allowPrivate: cfg.AllowPrivateNetworks}}
	for i, r := range cfg.FileRoots {
		f := fmt.Sprintf("FileRoots[%d]", i)
		if !filepath.IsAbs(r) {
			return bad(f, "%q is not an absolute path", r)
		}
		if hasDotDot(r) {
			return bad(f, `%q holds ".."`, r)
		}
		real, err := filepath.EvalSymlinks(r)
		if err != nil {
			return bad(f, "%v", err)
		}
		st, err := os.Stat(real)
		if err != nil {
			return bad(f, "%v", err)
		}
		if !st.IsDir() {
			return bad(f, "%q is not a directory", r)
		}
		s.roots = append(s.roots, real)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"ConnectTimeout", &cfg.ConnectTimeout, DefaultConnectTimeout},
		{"ResponseHeaderTimeout", &cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
		{"RetryBackoff", &cfg.RetryBackoff, DefaultRetryBackoff},
	} {
		if *d.v < 0 {
			return bad(d.name, "must not be negative (%s)", *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.MaxInputBytes < 0 {
		return bad("MaxInputBytes", "must not be negative")
	}
	if cfg.MaxInputBytes == 0 {
		cfg.MaxInputBytes = DefaultMaxInputBytes
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	} else if !filepath.IsAbs(cfg.TempDir) {
		return bad("TempDir", "%q is not an absolute path", cfg.TempDir)
	}
	if cfg.HTTPClient != nil {
		s.client = cfg.HTTPClient
	} else {
		s.transport = newTransport(cfg, s.policy.control)
		s.client = &http.Client{Transport: s.transport, CheckRedirect: checkRedirect}
	}
	if err := s.initS3(&cfg); err != nil {
		return nil, err
	}
	s.cfg = cfg
	return s, nil
}

func newTransport(cfg Config, control func(string, string, syscall.RawConn) error) *http.Transport {
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second, Control: control}
	return &http.Transport{
		Proxy:                 nil, // a proxy would make the policy check the proxy, not the target
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		DisableCompression:    true, // ranges and Content-Length must be of the bytes as stored
		ForceAttemptHTTP2:     true,
	}
}

// checkRedirect allows GET and HEAD at most 5 redirects, to http and https only; every hop's
// address is checked again by the dialer.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if m := via[0].Method; m != http.MethodGet && m != http.MethodHead {
		// An upload or a delete is not replayed elsewhere (and the client would turn a
		// redirected PUT into a GET): the 3xx is the answer.
		return http.ErrUseLastResponse
	}
	if len(via) >= 5 {
		return newErr("open", req.URL.String(), ErrRejected, "stopped after 5 redirects", nil)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return newErr("open", req.URL.String(), ErrUnsupportedScheme, "redirect to a non-HTTP URL", nil)
	}
	if req.URL.User != nil {
		return newErr("open", req.URL.String(), ErrRejected, "redirect to a URL with credentials", nil)
	}
	return nil
}

// Close releases idle connections held by the Store's own HTTP transports.
func (s *Store) Close() {
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	if s.s3tr != nil {
		s.s3tr.CloseIdleConnections()
	}
}

// Check validates rawURL like the package-level Check, and also that this Store serves it:
// local paths lexically inside FileRoots (symlinks are resolved only when opening), nats://
// only with JetStream, s3:// only with an S3 endpoint. No I/O.
func (s *Store) Check(rawURL string) error {
	loc, err := parse("check", rawURL, false)
	if err != nil {
		return err
	}
	return s.served("check", loc)
}

func (s *Store) served(op string, loc location) error {
	switch loc.scheme {
	case "file":
		if s.rootOf(loc.path) == "" {
			return newErr(op, loc.raw, ErrNotAllowedPath, "outside the allowed file roots ("+strings.Join(s.cfg.FileRoots, ", ")+")", nil)
		}
	case "nats":
		if s.cfg.JetStream == nil {
			return newErr(op, loc.raw, ErrUnsupportedScheme, "nats:// needs a NATS JetStream connection and this store has none", nil)
		}
	case "s3":
		if s.s3 == nil {
			return newErr(op, loc.raw, ErrUnsupportedScheme, "s3:// needs an S3 endpoint and none is configured", nil)
		}
	}
	return nil
}

// rootOf returns the root that holds p (lexically), or "".
func (s *Store) rootOf(p string) string {
	for _, r := range s.roots {
		if within(r, p) {
			return r
		}
	}
	// Roots are stored resolved; a path may name a root by its unresolved name.
	for i, r := range s.cfg.FileRoots {
		if within(filepath.Clean(r), p) {
			return s.roots[i]
		}
	}
	return ""
}

func within(root, p string) bool {
	return root == "/" || p == root || strings.HasPrefix(p, root+"/")
}

func (s *Store) resolve(op, raw string) (location, error) {
	loc, err := parse(op, raw, false)
	if err != nil {
		return location{}, err
	}
	if err := s.served(op, loc); err != nil {
		return location{}, err
	}
	return loc, nil
}

// Reader is an input being streamed. It never holds the whole object in memory.
type Reader struct {
	rc     io.ReadCloser
	size   int64
	n      int64
	max    int64
	raw    string
	err    error
	closed bool
}

func (s *Store) newReader(raw string, rc io.ReadCloser, size int64) (*Reader, error) {
	if size > s.cfg.MaxInputBytes {
		_ = rc.Close()
		return nil, newErr("open", raw, ErrTooLarge, fmt.Sprintf("input is %d bytes, more than the limit of %d", size, s.cfg.MaxInputBytes), nil)
	}
	return &Reader{rc: rc, size: size, max: s.cfg.MaxInputBytes, raw: raw}, nil
}

// Read reads the next bytes of the input.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.closed {
		return 0, newErr("read", r.raw, nil, "reader closed", os.ErrClosed)
	}
	if rest := r.max - r.n + 1; int64(len(p)) > rest {
		p = p[:rest] // one byte past the limit is enough to know
	}
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if r.n > r.max {
		r.err = newErr("read", r.raw, ErrTooLarge, fmt.Sprintf("input is larger than the limit of %d bytes", r.max), nil)
		return n - int(r.n-r.max), r.err
	}
	if err != nil { // sticky, EOF too: a Read after EOF must not resume (HTTP/S3 would GET bytes=size-)
		r.err = err
	}
	return n, err
}

// Size is the input's size in bytes as announced by its store, or -1 when unknown.
func (r *Reader) Size() int64 { return r.size }

// Close releases the input; it is safe to call more than once.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	return r.rc.Close()
}

// Open streams an input. Errors are *Error values classed by the sentinels.
func (s *Store) Open(ctx context.Context, rawURL string) (*Reader, error) {
	loc, err := s.resolve("open", rawURL)
	if err != nil {
		return nil, err
	}
	switch loc.scheme {
	case "file":
		return s.openFile(loc)
	case "http", "https":
		return s.openHTTP(ctx, loc)
	case "nats":
		return s.openNATS(ctx, loc)
	default: // s3
		return s.openS3(ctx, loc)
	}
}

// CreateOptions describe an output being created.
type CreateOptions struct {
	// JobID and Attempt name the temporary file of a local output (".NAME.JOBID.ATTEMPT.part"),
	// so parts left by earlier attempts of the job can be removed. JobID: letters, digits, '-'
	// and '_'; default a random id.
	JobID   string
	Attempt int
	// ContentType is sent with HTTP, NATS and S3 outputs.
	ContentType string
}

var jobIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)

// Writer is an output being written. Nothing is visible under the final name until Commit
// succeeds.
type Writer interface {
	// Write streams: a slow destination blocks Write (backpressure); nothing is buffered
	// without bound.
	io.Writer
	// Commit makes the output visible under its final name, atomically.
	Commit(ctx context.Context) error
	// Abort discards the output. It is safe after a failed Commit, more than once, and is a
	// no-op after a successful Commit.
	Abort()
}

// LocalWriter is implemented by writers of local files: LocalPath is the temporary file being
// written, which can be inspected (e.g. by ffprobe) before Commit.
type LocalWriter interface {
	Writer
	LocalPath() string
}

// Create starts an output. Nothing is visible under the final name until Commit succeeds. ctx
// bounds the whole upload (every Write); Commit takes its own.
func (s *Store) Create(ctx context.Context, rawURL string, o CreateOptions) (Writer, error) {
	loc, err := s.resolve("create", rawURL)
	if err != nil {
		return nil, err
	}
	if o.JobID == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.JobID = "w" + hex.EncodeToString(b[:])
	} else if !jobIDRe.MatchString(o.JobID) {
		return nil, newErr("create", rawURL, ErrRejected, fmt.Sprintf("bad job id %q", o.JobID), nil)
	}
	if o.Attempt < 0 {
		return nil, newErr("create", rawURL, ErrRejected, "negative attempt", nil)
	}
	if strings.ContainsFunc(o.ContentType, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return nil, newErr("create", rawURL, ErrRejected, "bad content type", nil)
	}
	switch loc.scheme {
	case "file":
		return s.createFile(loc, o)
	case "http", "https":
		return s.createHTTP(ctx, loc, o)
	case "nats":
		return s.createNATS(ctx, loc, o)
	default:
		return s.createS3(ctx, loc, o)
	}
}

// Info describes a stored object.
type Info struct {
	Size int64 // -1 when unknown
	Dir  bool  // a local directory: nothing can be written under its name
}

// Stat returns what the store knows about rawURL; ErrNotFound when it is absent.
func (s *Store) Stat(ctx context.Context, rawURL string) (Info, error) {
	loc, err := s.resolve("stat", rawURL)
	if err != nil {
		return Info{}, err
	}
	switch loc.scheme {
	case "file":
		return s.statFile(loc)
	case "http", "https":
		return s.statHTTP(ctx, loc)
	case "nats":
		return s.statNATS(ctx, loc)
	default:
		return s.statS3(ctx, loc)
	}
}

// Delete removes rawURL. Deleting what is absent is not an error (redelivered jobs clean up
// twice).
func (s *Store) Delete(ctx context.Context, rawURL string) error {
	loc, err := s.resolve("delete", rawURL)
	if err != nil {
		return err
	}
	switch loc.scheme {
	case "file":
		return s.deleteFile(loc)
	case "http", "https":
		return s.deleteHTTP(ctx, loc)
	case "nats":
		return s.deleteNATS(ctx, loc)
	default:
		return s.deleteS3(ctx, loc)
	}
}

// backoff waits the delay before resume attempt n (0-based), or until ctx ends.
func (s *Store) backoff(ctx context.Context, n int) error {
	d := s.cfg.RetryBackoff
	for i := 0; i < n && d < maxRetryBackoff; i++ {
		d *= 2
	}
	d = min(d, maxRetryBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
