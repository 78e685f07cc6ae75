package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/transcoder/transcoder/storage"
)

const (
	s3Key    = "transcoder-test"
	s3Secret = "transcoder-test-secret"
	s3Bucket = "videos"
)

// weedPath finds the SeaweedFS binary built by scripts/seaweedfs.sh.
func weedPath() string {
	if p := os.Getenv("TRANSCODER_WEED"); p != "" {
		return p
	}
	cache := os.Getenv("TRANSCODER_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		cache = filepath.Join(home, ".cache", "transcoder")
	}
	return filepath.Join(cache, "bin", "weed")
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// startSeaweedFS runs a single-process SeaweedFS (master, volume, filer, S3) on free loopback
// ports and returns its S3 endpoint and a client for checking on it, once a bucket exists.
func startSeaweedFS(t *testing.T) (string, *minio.Core) {
	t.Helper()
	weed := weedPath()
	if st, err := os.Stat(weed); err != nil || st.IsDir() {
		t.Skip("seaweedfs not built: run scripts/seaweedfs.sh (make test does)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `{"identities":[{"name":"test","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, s3Key, s3Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	p := freePorts(t, 8)
	log, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(weed, "server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+data,
		"-master.port="+strconv.Itoa(p[0]), "-master.port.grpc="+strconv.Itoa(p[1]),
		"-volume.port="+strconv.Itoa(p[2]), "-volume.port.grpc="+strconv.Itoa(p[3]),
		"-filer.port="+strconv.Itoa(p[4]), "-filer.port.grpc="+strconv.Itoa(p[5]),
		"-s3", "-s3.port="+strconv.Itoa(p[6]), "-s3.port.grpc="+strconv.Itoa(p[7]),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config="+conf,
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = log.Close()
	})
	endpoint := "127.0.0.1:" + strconv.Itoa(p[6])
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	client, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(s3Key, s3Secret, ""), Transport: tr, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	core := &minio.Core{Client: client}

	// Ready when a bucket can be made and an object written into it.
	deadline := time.NewTimer(90 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		last = client.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{})
		if r := minio.ToErrorResponse(last); r.Code == "BucketAlreadyOwnedByYou" || r.Code == "BucketAlreadyExists" {
			last = nil
		}
		if last == nil {
			_, last = client.PutObject(ctx, s3Bucket, "probe", bytes.NewReader([]byte("ok")), 2, minio.PutObjectOptions{})
		}
		cancel()
		if last == nil {
			return endpoint, core
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			b, _ := os.ReadFile(log.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Fatalf("seaweedfs not ready: %v\n%s", last, b)
		}
	}
}

func s3Store(t *testing.T, endpoint string) (*storage.Store, string) {
	spool := t.TempDir()
	return newStore(t, storage.Config{
		TempDir: spool, RetryBackoff: time.Millisecond,
		S3: storage.S3Config{Endpoint: endpoint, AccessKey: s3Key, SecretKey: s3Secret, PartSize: storage.MinS3PartSize},
	}), spool
}

func uploads(t *testing.T, core *minio.Core, key string) int {
	t.Helper()
	res, err := core.ListMultipartUploads(context.Background(), s3Bucket, key, "", "", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Uploads)
}

func TestS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a SeaweedFS server")
	}
	endpoint, core := startSeaweedFS(t)
	s, spool := s3Store(t, endpoint)
	ctx := context.Background()

	t.Run("small object", func(t *testing.T) {
		url := "s3://" + s3Bucket + "/small/v.mp4"
		data := payload(300<<10+1, 30)
		w, err := s.Create(ctx, url, storage.CreateOptions{ContentType: "video/mp4"})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, data, 64<<10)
		if _, err := s.Stat(ctx, url); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("visible before Commit: %v", err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Abort()
		got, r, err := readAll(t, s, url)
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, got, data)
		if r.Size() != int64(len(data)) {
			t.Errorf("Size = %d", r.Size())
		}
		info, err := s.Stat(ctx, url)
		if err != nil || info.Size != int64(len(data)) {
			t.Errorf("Stat = %+v, %v", info, err)
		}
		if err := s.Delete(ctx, url); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Open(ctx, url); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open after Delete = %v", err)
		}
		if err := s.Delete(ctx, url); err != nil {
			t.Errorf("second Delete = %v", err)
		}
	})

	t.Run("multipart", func(t *testing.T) {
		const key = "multi/v.mp4"
		url := "s3://" + s3Bucket + "/" + key
		data := payload(12<<20+99, 31)
		w, err := s.Create(ctx, url, storage.CreateOptions{ContentType: "video/mp4"})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, data, 1<<20+7)
		// Two full parts are uploaded, the rest is spooled; nothing is visible yet.
		if n := uploads(t, core, key); n != 1 {
			t.Errorf("%d multipart uploads in progress, want 1", n)
		}
		if _, err := s.Stat(ctx, url); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("visible before Commit: %v", err)
		}
		// The spooled part is on disk but unlinked: a crash leaves nothing behind.
		if ents, err := os.ReadDir(spool); err != nil || len(ents) != 0 {
			t.Errorf("spool dir holds %d entries (%v)", len(ents), err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		got, _, err := readAll(t, s, url)
		if err != nil {
			t.Fatal(err)
		}
		sameBytes(t, got, data)
		if n := uploads(t, core, key); n != 0 {
			t.Errorf("%d multipart uploads left", n)
		}
	})

	t.Run("abort", func(t *testing.T) {
		const key = "aborted/v.mp4"
		url := "s3://" + s3Bucket + "/" + key
		w, err := s.Create(ctx, url, storage.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		writeAll(t, w, payload(11<<20, 32), 1<<20)
		w.Abort()
		w.Abort()
		if _, err := s.Stat(ctx, url); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat after Abort = %v", err)
		}
		if n := uploads(t, core, key); n != 0 {
			t.Errorf("%d multipart uploads left after Abort", n)
		}
		if err := w.Commit(ctx); err == nil {
			t.Error("Commit after Abort succeeded")
		}
	})

	t.Run("missing", func(t *testing.T) {
		if _, err := s.Open(ctx, "s3://"+s3Bucket+"/nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(missing key) = %v", err)
		}
		if _, err := s.Create(ctx, "s3://nobucket/x", storage.CreateOptions{}); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Create(missing bucket) = %v", err)
		}
		bad := newStore(t, storage.Config{S3: storage.S3Config{Endpoint: endpoint, AccessKey: s3Key, SecretKey: "wrong"}})
		if _, err := bad.Open(ctx, "s3://"+s3Bucket+"/probe"); !errors.Is(err, storage.ErrForbidden) {
			t.Errorf("Open with a wrong secret = %v", err)
		}
	})
}
