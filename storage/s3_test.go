package storage_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/storage"
)

const (
	s3Key    = testenv.S3Key
	s3Secret = testenv.S3Secret
	s3Bucket = "videos"
)

func startSeaweedFS(t *testing.T) (string, *minio.Core) {
	t.Helper()
	return testenv.SeaweedFS(t, s3Bucket)
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
