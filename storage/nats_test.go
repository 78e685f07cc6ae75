package storage_test

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoder/transcoder/internal/testenv"
	"github.com/transcoder/transcoder/storage"
)

func natsStore(t *testing.T) (*storage.Store, jetstream.JetStream) {
	t.Helper()
	_, nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return newStore(t, storage.Config{JetStream: js}), js
}

func putNATS(t *testing.T, s *storage.Store, url string, data []byte) {
	t.Helper()
	w, err := s.Create(context.Background(), url, storage.CreateOptions{ContentType: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, data, 100<<10)
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNATSRoundTrip(t *testing.T) {
	s, js := natsStore(t)
	ctx := context.Background()
	const url = "nats://media/job1/v.mp4"
	// Open does not create the bucket.
	if _, err := s.Open(ctx, url); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open before the bucket exists = %v", err)
	}
	if _, err := js.ObjectStore(ctx, "media"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("Open created the bucket: %v", err)
	}

	data := payload(5<<20+777, 20)
	w, err := s.Create(ctx, url, storage.CreateOptions{ContentType: "video/mp4"})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, data[:3<<20], 7000) // odd sizes: chunks are still filled
	if _, err := s.Stat(ctx, url); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("visible before Commit: %v", err)
	}
	writeAll(t, w, data[3<<20:], 1<<20)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Abort() // no-op after Commit

	got, r, err := readAll(t, s, url)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, data)
	if r.Size() != int64(len(data)) {
		t.Errorf("Size = %d", r.Size())
	}
	obs, err := js.ObjectStore(ctx, "media")
	if err != nil {
		t.Fatal(err)
	}
	info, err := obs.GetInfo(ctx, "job1/v.mp4")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint32((len(data) + 128<<10 - 1) / (128 << 10)); info.Chunks != want {
		t.Errorf("%d chunks, want %d full ones", info.Chunks, want)
	}
	if ct := info.Headers.Get("Content-Type"); ct != "video/mp4" {
		t.Errorf("Content-Type %q", ct)
	}

	// Empty objects work too.
	putNATS(t, s, "nats://media/empty", nil)
	if got, _, err := readAll(t, s, "nats://media/empty"); err != nil || len(got) != 0 {
		t.Errorf("empty object: %d bytes, %v", len(got), err)
	}
}

func TestNATSAbortKeepsPreviousVersion(t *testing.T) {
	s, js := natsStore(t)
	ctx := context.Background()
	const url = "nats://media/v.mp4"
	v1 := payload(2<<20, 21)
	putNATS(t, s, url, v1)
	stream, err := js.Stream(ctx, "OBJ_media")
	if err != nil {
		t.Fatal(err)
	}
	before, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}

	w, err := s.Create(ctx, url, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, payload(3<<20, 22), 256<<10)
	w.Abort()
	w.Abort()
	if err := w.Commit(ctx); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	got, _, err := readAll(t, s, url)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, v1)
	after, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.State.Msgs != before.State.Msgs || after.State.Bytes != before.State.Bytes {
		t.Errorf("aborted chunks left: %d msgs / %d bytes, were %d / %d", after.State.Msgs, after.State.Bytes, before.State.Msgs, before.State.Bytes)
	}

	// The caller's context ending is an abort too.
	cctx, cancel := context.WithCancel(ctx)
	w, err = s.Create(cctx, url, storage.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, payload(1<<20, 23), 64<<10)
	cancel()
	if err := w.Commit(ctx); err == nil {
		t.Error("Commit after the context was canceled succeeded")
	}
	w.Abort()
	got, _, err = readAll(t, s, url)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, v1)

	// A new version replaces the old one and its chunks.
	v2 := payload(1<<20, 24)
	putNATS(t, s, url, v2)
	got, _, err = readAll(t, s, url)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, v2)
}

func TestNATSStatDelete(t *testing.T) {
	s, _ := natsStore(t)
	ctx := context.Background()
	const url = "nats://media/a/b.ts"
	data := payload(300<<10, 25)
	putNATS(t, s, url, data)
	info, err := s.Stat(ctx, url)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if _, err := s.Stat(ctx, "nats://media/missing"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(missing) = %v", err)
	}
	if _, err := s.Stat(ctx, "nats://nobucket/x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat(missing bucket) = %v", err)
	}
	if err := s.Delete(ctx, url); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, url); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after Delete = %v", err)
	}
	if _, err := s.Open(ctx, url); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open after Delete = %v", err)
	}
	if err := s.Delete(ctx, url); err != nil {
		t.Errorf("second Delete = %v", err)
	}
	if err := s.Delete(ctx, "nats://nobucket/x"); err != nil {
		t.Errorf("Delete in a missing bucket = %v", err)
	}
}

func TestNATSTooLarge(t *testing.T) {
	_, nc := testenv.NATS(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	big := newStore(t, storage.Config{JetStream: js})
	putNATS(t, big, "nats://media/v", payload(2000, 26))
	small := newStore(t, storage.Config{JetStream: js, MaxInputBytes: 1999})
	if _, err := small.Open(context.Background(), "nats://media/v"); !errors.Is(err, storage.ErrTooLarge) {
		t.Errorf("Open = %v, want ErrTooLarge", err)
	}
}

func TestNATSNotConfigured(t *testing.T) {
	s := newStore(t, storage.Config{})
	if _, err := s.Open(context.Background(), "nats://media/v"); !errors.Is(err, storage.ErrUnsupportedScheme) {
		t.Errorf("Open = %v", err)
	}
	if _, err := s.Create(context.Background(), "nats://media/v", storage.CreateOptions{}); !errors.Is(err, storage.ErrUnsupportedScheme) {
		t.Errorf("Create = %v", err)
	}
}
