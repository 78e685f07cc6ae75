package storage_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transcoder/transcoder/storage"
)

// faultServer serves data with Range support and injects faults per request.
type faultServer struct {
	data    []byte
	etag    string // sent as ETag unless empty
	noRange bool   // ignore Range: always 200 with everything
	// cut says, for request n (0-based), after how many body bytes the response ends early
	// (-1: never).
	cut func(n int) int64
	// short ends a cut response by returning from the handler, having declared the full
	// Content-Length (a server that lies about it); otherwise the connection is dropped.
	short bool
	// stall makes a cut response wait, after its bytes, until the client goes away.
	stall bool
	// pace, if set, sends paceBytes per tick.
	pace      time.Duration
	paceBytes int
	chunked   bool // no Content-Length

	mu     sync.Mutex
	ranges []string
}

func (f *faultServer) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ranges...)
}

func (f *faultServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	n := len(f.ranges)
	f.ranges = append(f.ranges, r.Header.Get("Range"))
	f.mu.Unlock()
	start, status := 0, http.StatusOK
	if rng := r.Header.Get("Range"); rng != "" && !f.noRange {
		v, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || v >= len(f.data) {
			http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, status = v, http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", v, len(f.data)-1, len(f.data)))
	}
	body := f.data[start:]
	if f.etag != "" {
		w.Header().Set("ETag", f.etag)
	}
	if !f.chunked {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	limit, cutting := int64(len(body)), false
	if f.cut != nil {
		if c := f.cut(n); c >= 0 && c < limit {
			limit, cutting = c, true
		}
	}
	out := body[:limit]
	if f.pace > 0 {
		t := time.NewTicker(f.pace)
		defer t.Stop()
		for len(out) > 0 {
			k := min(f.paceBytes, len(out))
			if _, err := w.Write(out[:k]); err != nil {
				return
			}
			_ = rc.Flush()
			out = out[k:]
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
	} else if _, err := w.Write(out); err != nil {
		return
	}
	if !cutting {
		return
	}
	_ = rc.Flush()
	switch {
	case f.stall:
		<-r.Context().Done()
	case f.short:
		// Return having sent less than the declared Content-Length.
	default:
		panic(http.ErrAbortHandler) // drop the connection
	}
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// privateOK is the configuration for tests whose servers are on loopback.
func privateOK() storage.Config {
	return storage.Config{AllowPrivateNetworks: true, RetryBackoff: time.Millisecond}
}

func TestHTTPResumesAfterDroppedConnection(t *testing.T) {
	data := payload(3<<20+5, 3)
	f := &faultServer{data: data, etag: `"v1"`, cut: func(n int) int64 {
		switch n {
		case 0:
			return 1<<20 + 123
		case 1:
			return 512 << 10
		}
		return -1
	}}
	srv := serve(t, f)
	s := newStore(t, privateOK())
	got, r, err := readAll(t, s, srv.URL+"/v.mp4")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, data)
	if r.Size() != int64(len(data)) {
		t.Errorf("Size = %d", r.Size())
	}
	want := []string{"", "bytes=" + strconv.Itoa(1<<20+123) + "-", "bytes=" + strconv.Itoa(1<<20+123+512<<10) + "-"}
	if got := f.requests(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestHTTPShortBodyResumes(t *testing.T) {
	data := payload(2<<20, 4)
	for _, noRange := range []bool{false, true} {
		t.Run(fmt.Sprintf("noRange=%v", noRange), func(t *testing.T) {
			f := &faultServer{data: data, etag: `"v1"`, short: true, noRange: noRange, cut: func(n int) int64 {
				if n == 0 {
					return int64(len(data)) * 4 / 10
				}
				return -1
			}}
			srv := serve(t, f)
			s := newStore(t, privateOK())
			got, _, err := readAll(t, s, srv.URL+"/v.mp4")
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, got, data)
			if reqs := f.requests(); len(reqs) != 2 || reqs[1] != "bytes="+strconv.Itoa(len(data)*4/10)+"-" {
				t.Errorf("requests %q", reqs)
			}
		})
	}
}

// A server that keeps ending short never yields a silently truncated input.
func TestHTTPShortBodyNeverTruncates(t *testing.T) {
	data := payload(1<<20, 5)
	f := &faultServer{data: data, short: true, cut: func(n int) int64 {
		if n == 0 {
			return 1000
		}
		return 0
	}}
	srv := serve(t, f)
	cfg := privateOK()
	cfg.Retries = 3
	s := newStore(t, cfg)
	got, _, err := readAll(t, s, srv.URL+"/v.mp4")
	if !errors.Is(err, storage.ErrUnavailable) || !storage.Transient(err) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if len(got) != 1000 {
		t.Errorf("read %d bytes", len(got))
	}
	if n := len(f.requests()); n != 4 {
		t.Errorf("%d requests, want 1 + 3 resumes", n)
	}
	t.Log(err)
}

func TestHTTPSlowServerCompletes(t *testing.T) {
	data := payload(1<<20, 6)
	srv := serve(t, &faultServer{data: data, pace: 2 * time.Millisecond, paceBytes: 16 << 10})
	cfg := privateOK()
	cfg.IdleTimeout = 2 * time.Second
	s := newStore(t, cfg)
	got, _, err := readAll(t, s, srv.URL+"/slow")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, data)
}

func TestHTTPStalledBodyFails(t *testing.T) {
	data := payload(64<<10, 7)
	f := &faultServer{data: data, stall: true, cut: func(n int) int64 {
		if n == 0 {
			return 1000
		}
		return 0
	}}
	srv := serve(t, f)
	cfg := privateOK()
	cfg.IdleTimeout = 100 * time.Millisecond
	cfg.Retries = 2
	s := newStore(t, cfg)
	got, _, err := readAll(t, s, srv.URL+"/stall")
	if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "no progress") {
		t.Fatalf("err = %v, want ErrUnavailable after no progress", err)
	}
	if len(got) != 1000 {
		t.Errorf("read %d bytes", len(got))
	}
}

func TestHTTPStatusClasses(t *testing.T) {
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.WriteHeader(code)
	}))
	s := newStore(t, privateOK())
	for _, c := range []struct {
		code      int
		kind      error
		transient bool
	}{
		{404, storage.ErrNotFound, false},
		{410, storage.ErrNotFound, false},
		{401, storage.ErrForbidden, false},
		{403, storage.ErrForbidden, false},
		{400, storage.ErrRejected, false},
		{304, storage.ErrRejected, false},
		{429, storage.ErrUnavailable, true},
		{500, storage.ErrUnavailable, true},
		{503, storage.ErrUnavailable, true},
	} {
		_, err := s.Open(context.Background(), srv.URL+"/"+strconv.Itoa(c.code))
		if !errors.Is(err, c.kind) || storage.Transient(err) != c.transient {
			t.Errorf("HTTP %d: %v, want %v (transient %v)", c.code, err, c.kind, c.transient)
		}
		if err != nil && !strings.Contains(err.Error(), "HTTP "+strconv.Itoa(c.code)) {
			t.Errorf("HTTP %d: message %q does not say the status", c.code, err)
		}
	}
	// Connection refused: transient.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	if _, err := s.Open(context.Background(), deadURL+"/x"); !storage.Transient(err) {
		t.Errorf("connection refused: %v, want transient", err)
	}
}

// TestHTTPUnknownHost: a name the DNS says does not exist is not found, not worth retrying.
func TestHTTPUnknownHost(t *testing.T) {
	s := newStore(t, storage.Config{})
	_, err := s.Open(context.Background(), "http://no-such-host.invalid/x.mp4")
	var de *net.DNSError
	if errors.As(err, &de) && !de.IsNotFound {
		t.Skipf("no usable resolver here: %v", err)
	}
	if !errors.Is(err, storage.ErrNotFound) || storage.Transient(err) || !strings.Contains(err.Error(), "not found") {
		t.Errorf("unknown host: %v, want ErrNotFound, not transient", err)
	}
}

func TestHTTPRefusesPrivateAddresses(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
	}))
	s := newStore(t, storage.Config{})
	u, _ := url.Parse(srv.URL)
	_, err := s.Open(context.Background(), srv.URL+"/v.mp4?sig=secret")
	want := "refused to connect to " + u.Host + ": loopback address not allowed (set allow_private_networks to permit)"
	if !errors.Is(err, storage.ErrForbiddenAddress) || !errors.Is(err, storage.ErrForbidden) || storage.Transient(err) || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want ErrForbiddenAddress saying %q", err, want)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error shows the query: %v", err)
	}
	// By name: the resolved address is checked.
	if _, err := s.Open(context.Background(), "http://localhost:"+u.Port()+"/v.mp4"); !errors.Is(err, storage.ErrForbiddenAddress) {
		t.Errorf("localhost: %v", err)
	}
	// Outputs too.
	w, err := s.Create(context.Background(), srv.URL+"/out.mp4", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, werr := w.Write([]byte("x"))
	cerr := w.Commit(context.Background())
	w.Abort()
	if !errors.Is(werr, storage.ErrForbiddenAddress) && !errors.Is(cerr, storage.ErrForbiddenAddress) {
		t.Errorf("PUT to loopback: write %v, commit %v", werr, cerr)
	}
	mu.Lock()
	defer mu.Unlock()
	if hits != 0 {
		t.Errorf("the refused server got %d requests", hits)
	}
}

// The metadata service is refused by the dialer before connecting: no network is needed.
func TestHTTPMetadataRefused(t *testing.T) {
	for _, allow := range []bool{false, true} {
		s := newStore(t, storage.Config{AllowPrivateNetworks: allow, ConnectTimeout: 30 * time.Second})
		for _, u := range []string{"http://169.254.169.254/latest/meta-data/iam/", "http://[fd00:ec2::254]/latest/meta-data/", "http://[::ffff:169.254.169.254]/"} {
			start := time.Now()
			_, err := s.Open(context.Background(), u)
			if !errors.Is(err, storage.ErrForbiddenAddress) || !strings.Contains(err.Error(), "cloud metadata address not allowed") {
				t.Errorf("allow=%v %s: %v", allow, u, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("refusal took %s: it tried to connect", d)
			}
		}
	}
}

func TestHTTPRedirects(t *testing.T) {
	data := payload(10<<10, 8)
	mux := http.NewServeMux()
	mux.Handle("/data", &faultServer{data: data})
	redirect := func(path, to string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) })
	}
	srv := serve(t, mux)
	u, _ := url.Parse(srv.URL)
	redirect("/same", "/data")
	redirect("/private", "http://10.255.0.1:81/x")
	redirect("/v6loop", "http://[::1]:"+u.Port()+"/data")
	redirect("/meta", "http://169.254.169.254/latest/meta-data/")
	redirect("/loop", "/loop")
	redirect("/ftp", "ftp://example.com/x")

	s := newStore(t, storage.Config{})
	// Allow exactly the test server's address; everything else keeps the default policy.
	storage.AllowAddrForTest(s, func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") })
	got, _, err := readAll(t, s, srv.URL+"/same")
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, data)
	for _, c := range []struct {
		path string
		kind error
		msg  string
	}{
		{"/private", storage.ErrForbiddenAddress, "refused to connect to 10.255.0.1:81: private address not allowed"},
		{"/v6loop", storage.ErrForbiddenAddress, "loopback address not allowed"},
		{"/meta", storage.ErrForbiddenAddress, "cloud metadata address"},
		{"/loop", storage.ErrRejected, "stopped after 5 redirects"},
		{"/ftp", storage.ErrUnsupportedScheme, "redirect to a non-HTTP URL"},
	} {
		_, err := s.Open(context.Background(), srv.URL+c.path)
		if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) || storage.Transient(err) {
			t.Errorf("%s: %v, want %v saying %q", c.path, err, c.kind, c.msg)
		}
	}
}

func TestHTTPTooLarge(t *testing.T) {
	data := payload(4096, 9)
	cfg := privateOK()
	cfg.MaxInputBytes = 1000
	s := newStore(t, cfg)
	srv := serve(t, &faultServer{data: data})
	if _, err := s.Open(context.Background(), srv.URL+"/big"); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("by Content-Length: %v", err)
	}
	chunked := serve(t, &faultServer{data: data, chunked: true, pace: time.Millisecond, paceBytes: 512})
	got, _, err := readAll(t, s, chunked.URL+"/big")
	if !errors.Is(err, storage.ErrTooLarge) || len(got) != 1000 {
		t.Errorf("as read: %d bytes, %v", len(got), err)
	}
}

// putRecorder records what PUT requests delivered.
type putRecorder struct {
	status int
	early  bool // answer before reading the body
	done   chan putResult
}

type putResult struct {
	sum         [32]byte
	n           int64
	err         error
	chunked     bool
	contentType string
}

func (p *putRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.early {
		w.WriteHeader(p.status)
		p.done <- putResult{}
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	res := putResult{n: n, err: err, chunked: r.ContentLength == -1 && len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked", contentType: r.Header.Get("Content-Type")}
	copy(res.sum[:], h.Sum(nil))
	if err == nil {
		w.WriteHeader(p.status)
	}
	p.done <- res
}

func waitPut(t *testing.T, p *putRecorder) putResult {
	t.Helper()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	select {
	case r := <-p.done:
		return r
	case <-timer.C:
		t.Fatal("the server never finished the request")
		return putResult{}
	}
}

func TestHTTPPut(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, privateOK())
	data := payload(5<<20+3, 10)

	t.Run("commit", func(t *testing.T) {
		rec := &putRecorder{status: http.StatusCreated, done: make(chan putResult, 1)}
		srv := serve(t, rec)
		w, err := s.Create(ctx, srv.URL+"/out/v.mp4", storage.CreateOptions{ContentType: "video/mp4"})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, data, 100<<10)
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		res := waitPut(t, rec)
		if res.err != nil || res.n != int64(len(data)) || res.sum != sha256.Sum256(data) {
			t.Fatalf("server got %d bytes (%v), want %d identical", res.n, res.err, len(data))
		}
		if !res.chunked || res.contentType != "video/mp4" {
			t.Errorf("chunked %v, content type %q", res.chunked, res.contentType)
		}
	})
	t.Run("abort", func(t *testing.T) {
		rec := &putRecorder{status: http.StatusCreated, done: make(chan putResult, 1)}
		srv := serve(t, rec)
		w, err := s.Create(ctx, srv.URL+"/out/v.mp4", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, data[:1<<20], 64<<10)
		w.Abort()
		w.Abort()
		if res := waitPut(t, rec); res.err == nil {
			t.Fatalf("the server saw a complete body of %d bytes after Abort", res.n)
		}
		if err := w.Commit(ctx); err == nil {
			t.Error("Commit after Abort succeeded")
		}
	})
	t.Run("server error", func(t *testing.T) {
		rec := &putRecorder{status: http.StatusInternalServerError, done: make(chan putResult, 1)}
		srv := serve(t, rec)
		w, err := s.Create(ctx, srv.URL+"/out/v.mp4", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, data[:100<<10], 10<<10)
		err = w.Commit(ctx)
		w.Abort()
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("Commit = %v, want ErrUnavailable", err)
		}
		waitPut(t, rec)
	})
	t.Run("redirected", func(t *testing.T) {
		srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				t.Errorf("the upload became a %s", r.Method)
				return
			}
			_, _ = io.Copy(io.Discard, r.Body)
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}))
		w, err := s.Create(ctx, srv.URL+"/out/v.mp4", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, data[:10<<10], 1<<10)
		err = w.Commit(ctx)
		w.Abort()
		if !errors.Is(err, storage.ErrRejected) || !strings.Contains(err.Error(), "302") {
			t.Errorf("Commit = %v, want ErrRejected for the redirect", err)
		}
	})
	t.Run("forbidden early", func(t *testing.T) {
		rec := &putRecorder{status: http.StatusForbidden, early: true, done: make(chan putResult, 1)}
		srv := serve(t, rec)
		w, err := s.Create(ctx, srv.URL+"/out/v.mp4", storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, werr := w.Write(data[:64<<10])
		cerr := w.Commit(ctx)
		w.Abort()
		if !errors.Is(cerr, storage.ErrForbidden) && !errors.Is(werr, storage.ErrForbidden) {
			t.Errorf("write %v, commit %v; want ErrForbidden", werr, cerr)
		}
		waitPut(t, rec)
	})
}

// A server that stops reading blocks Write (nothing is buffered without bound), and the upload
// fails after IdleTimeout without progress.
func TestHTTPPutBackpressure(t *testing.T) {
	release := make(chan struct{})
	srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // never reads the body
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	cfg := privateOK()
	cfg.IdleTimeout = 200 * time.Millisecond
	s := newStore(t, cfg)
	w, err := s.Create(context.Background(), srv.URL+"/out", storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	buf := payload(1<<20, 13)
	written := 0
	for written < 256<<20 {
		n, err := w.Write(buf)
		written += n
		if err != nil {
			if !errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "no progress") {
				t.Fatalf("Write = %v, want ErrUnavailable after no progress", err)
			}
			t.Logf("Write blocked and failed after %d MiB: %v", written>>20, err)
			return
		}
	}
	t.Fatalf("%d MiB accepted by a server that reads nothing", written>>20)
}

func TestHTTPStatDelete(t *testing.T) {
	data := payload(12345, 11)
	mux := http.NewServeMux()
	mux.Handle("GET /v.mp4", &faultServer{data: data})
	mux.HandleFunc("DELETE /v.mp4", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("DELETE /broken", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	srv := serve(t, mux)
	s := newStore(t, privateOK())
	ctx := context.Background()
	info, err := s.Stat(ctx, srv.URL+"/v.mp4")
	if err != nil || info.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, %v", info, err)
	}
	if _, err := s.Stat(ctx, srv.URL+"/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(missing) = %v", err)
	}
	if err := s.Delete(ctx, srv.URL+"/v.mp4"); err != nil {
		t.Errorf("Delete = %v", err)
	}
	if err := s.Delete(ctx, srv.URL+"/missing"); err != nil {
		t.Errorf("Delete(missing) = %v", err)
	}
	if err := s.Delete(ctx, srv.URL+"/broken"); !storage.Transient(err) {
		t.Errorf("Delete(502) = %v", err)
	}
}

func TestHTTPCancel(t *testing.T) {
	data := payload(1<<20, 12)
	srv := serve(t, &faultServer{data: data, stall: true, cut: func(int) int64 { return 1000 }})
	s := newStore(t, privateOK())
	ctx, cancel := context.WithCancel(context.Background())
	r, err := s.Open(ctx, srv.URL+"/v")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Close() }()
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.Read(buf); !errors.Is(err, context.Canceled) || storage.Transient(err) {
		t.Fatalf("Read after cancel = %v", err)
	}
}
