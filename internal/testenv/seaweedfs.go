package testenv

import (
	"bytes"
	"context"
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
)

// Credentials of the SeaweedFS that SeaweedFS starts.
const (
	S3Key    = "transcoder-test"
	S3Secret = "transcoder-test-secret"
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

func freePorts(t testing.TB, n int) []int {
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

// SeaweedFS runs a single-process SeaweedFS (master, volume, filer, S3) on free loopback ports
// (a real S3-compatible server, built once by scripts/seaweedfs.sh) until the test ends, and
// returns its S3 endpoint and a client for checking on it once bucket exists. Credentials:
// S3Key and S3Secret. The test is skipped when the binary is absent.
func SeaweedFS(t testing.TB, bucket string) (string, *minio.Core) {
	t.Helper()
	weed := weedPath()
	if st, err := os.Stat(weed); err != nil || st.IsDir() {
		t.Skip("seaweedfs not built: run scripts/seaweedfs.sh (make test does)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `{"identities":[{"name":"test","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, S3Key, S3Secret), 0o600); err != nil {
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
	client, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(S3Key, S3Secret, ""), Transport: tr, MaxRetries: 1})
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
		last = client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
		if r := minio.ToErrorResponse(last); r.Code == "BucketAlreadyOwnedByYou" || r.Code == "BucketAlreadyExists" {
			last = nil
		}
		if last == nil {
			_, last = client.PutObject(ctx, bucket, "probe", bytes.NewReader([]byte("ok")), 2, minio.PutObjectOptions{})
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
