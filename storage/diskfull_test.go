package storage_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/storage"
)

// TestFileOutputDiskFull: a local output larger than its disk (a 1 MiB tmpfs) fails with
// ErrNoSpace, transient, naming the output's disk; Abort leaves nothing on it.
func TestFileOutputDiskFull(t *testing.T) {
	t.Parallel()
	disk := testenv.SmallDisk(t, 1<<20)
	s := newStore(t, storage.Config{})
	url := "file://" + filepath.Join(disk, "big.mp4")
	w, err := s.Create(context.Background(), url, storage.CreateOptions{JobID: "full", Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	data := payload(2<<20, 7)
	var werr error
	for off := 0; off < len(data) && werr == nil; off += 64 << 10 {
		_, werr = w.Write(data[off : off+64<<10])
	}
	if werr == nil {
		werr = w.Commit(context.Background())
	}
	checkDiskFull(t, werr, "output "+disk)
	w.Abort()
	testenv.Empty(t, disk)
}

// TestS3SpoolDiskFull: an S3 output's part is staged in TempDir (the multipart spool); a full
// one fails the write as ErrNoSpace naming that disk, and leaves nothing there.
func TestS3SpoolDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a SeaweedFS server")
	}
	spool := testenv.SmallDisk(t, 1<<20)
	endpoint, _ := startSeaweedFS(t)
	s := newStore(t, storage.Config{
		TempDir: spool, RetryBackoff: time.Millisecond,
		S3: storage.S3Config{Endpoint: endpoint, AccessKey: s3Key, SecretKey: s3Secret, PartSize: storage.MinS3PartSize},
	})
	ctx := context.Background()
	url := "s3://" + s3Bucket + "/full/v.mp4"
	w, err := s.Create(ctx, url, storage.CreateOptions{ContentType: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	data := payload(2<<20, 8)
	var werr error
	for off := 0; off < len(data) && werr == nil; off += 64 << 10 {
		_, werr = w.Write(data[off : off+64<<10])
	}
	checkDiskFull(t, werr, "multipart spool "+spool)
	w.Abort()
	testenv.Empty(t, spool)
	if _, err := s.Stat(ctx, url); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the failed upload is visible: %v", err)
	}
}

// checkDiskFull: err is a full disk, transient, and names the disk (what it holds, where, its
// size and free space).
func checkDiskFull(t *testing.T, err error, disk string) {
	t.Helper()
	var df *storage.DiskFullError
	switch {
	case err == nil:
		t.Fatal("2 MiB written to a 1 MiB disk without an error")
	case !errors.Is(err, storage.ErrNoSpace) || !storage.Transient(err) || !errors.As(err, &df):
		t.Fatalf("%v: not a transient ErrNoSpace", err)
	case !strings.Contains(err.Error(), "no space left on device: "+disk+" (1.0 MiB disk, "):
		t.Errorf("%q does not name the disk %s", err, disk)
	}
	t.Log(err)
}

func TestBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 8 << 20: "8.0 MiB", 3 << 29: "1.5 GiB"} {
		if got := storage.Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
