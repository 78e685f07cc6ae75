package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/storage"
)

// payload is n deterministic pseudo-random bytes.
func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newStore(t *testing.T, cfg storage.Config) *storage.Store {
	t.Helper()
	s, err := storage.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// readAll reads the whole input and returns its bytes and the error that ended the reading
// (nil at a clean end).
func readAll(t *testing.T, s *storage.Store, url string) ([]byte, *storage.Reader, error) {
	t.Helper()
	r, err := s.Open(context.Background(), url)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = r.Close() }()
	got, err := io.ReadAll(r)
	return got, r, err
}

func sameBytes(t *testing.T, got, want []byte) {
	t.Helper()
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Fatalf("content differs: got %d bytes, want %d", len(got), len(want))
	}
}

func writeAll(t *testing.T, w storage.Writer, data []byte, piece int) {
	t.Helper()
	for len(data) > 0 {
		n := min(piece, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatalf("write: %v", err)
		}
		data = data[n:]
	}
}

func TestFileRoundTrip(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, storage.Config{FileRoots: []string{root}})
	ctx := context.Background()
	data := payload(3<<20+17, 1)
	final := filepath.Join(root, "out", "v.mp4")

	w, err := s.Create(ctx, "file://"+final, storage.CreateOptions{JobID: "job1", Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	lw, ok := w.(storage.LocalWriter)
	if !ok {
		t.Fatal("file writers expose LocalPath")
	}
	if want := filepath.Join(root, "out", ".v.mp4.job1.2.part"); lw.LocalPath() != want {
		t.Fatalf("LocalPath = %q, want %q", lw.LocalPath(), want)
	}
	writeAll(t, w, data, 100<<10)
	if _, err := os.Stat(final); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("output visible before Commit: %v", err)
	}
	if _, err := s.Stat(ctx, final); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Stat before Commit = %v, want ErrNotFound", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Abort() // no-op after a successful Commit
	if _, err := os.Stat(lw.LocalPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("part file left: %v", err)
	}
	got, r, err := readAll(t, s, final)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, got, data)
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size = %d", r.Size())
	}
	info, err := s.Stat(ctx, "file://"+final)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
	if err := s.Delete(ctx, final); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, final); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Open(ctx, final); !errors.Is(err, storage.ErrNotFound) || storage.Transient(err) {
		t.Fatalf("Open after Delete = %v, want ErrNotFound", err)
	}
}

func TestFileAbortAndOldParts(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, storage.Config{FileRoots: []string{root}})
	ctx := context.Background()
	final := filepath.Join(root, "v.mp4")
	if err := os.WriteFile(final, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Parts of earlier attempts of this job (a killed worker) and of another job.
	stale := filepath.Join(root, ".v.mp4.job1.0.part")
	other := filepath.Join(root, ".v.mp4.job2.0.part")
	for _, p := range []string{stale, other} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, err := s.Create(ctx, final, storage.CreateOptions{JobID: "job1", Attempt: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale part of the same job not removed: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("part of another job removed: %v", err)
	}
	writeAll(t, w, payload(1<<20, 2), 64<<10)
	part := w.(storage.LocalWriter).LocalPath()
	w.Abort()
	w.Abort()
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("part left after Abort: %v", err)
	}
	if b, _ := os.ReadFile(final); string(b) != "previous" {
		t.Errorf("previous output changed by an aborted one: %q", b)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

func TestFileRoots(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.mp4")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "in.mp4"), []byte("inside"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink to a file outside, a directory symlink leading out, and one that stays in.
	if err := os.Symlink(secret, filepath.Join(root, "link.mp4")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "in.mp4"), filepath.Join(root, "alias.mp4")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, storage.Config{FileRoots: []string{root}})
	ctx := context.Background()

	if got, _, err := readAll(t, s, filepath.Join(root, "alias.mp4")); err != nil || string(got) != "inside" {
		t.Fatalf("symlink within the root: %q, %v", got, err)
	}
	for _, p := range []string{
		secret,
		filepath.Join(root, "link.mp4"),
		filepath.Join(root, "escape", "secret.mp4"),
		"file://" + filepath.Join(root, "escape", "secret.mp4"),
		root + "/../" + filepath.Base(outside) + "/secret.mp4",
	} {
		_, err := s.Open(ctx, p)
		if !errors.Is(err, storage.ErrNotAllowedPath) {
			t.Errorf("Open(%s) = %v, want ErrNotAllowedPath", p, err)
		}
	}
	for _, p := range []string{filepath.Join(outside, "new.mp4"), filepath.Join(root, "escape", "new.mp4"), filepath.Join(root, "escape", "sub", "new.mp4")} {
		w, err := s.Create(ctx, p, storage.CreateOptions{JobID: "j"})
		if !errors.Is(err, storage.ErrNotAllowedPath) {
			if w != nil {
				w.Abort()
			}
			t.Errorf("Create(%s) = %v, want ErrNotAllowedPath", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "sub")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused Create made a directory outside the roots")
	}
	if err := s.Check(secret); !errors.Is(err, storage.ErrNotAllowedPath) {
		t.Errorf("Check(%s) = %v", secret, err)
	}
	// Replacing a symlinked output replaces the link, never writes through it.
	w, err := s.Create(ctx, filepath.Join(root, "link.mp4"), storage.CreateOptions{JobID: "j"})
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, []byte("new"), 3)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret" {
		t.Fatalf("wrote through a symlink out of the root: %q", b)
	}
	// Not a regular file.
	if _, err := s.Open(ctx, root); !errors.Is(err, storage.ErrRejected) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(dir) = %v", err)
	}
}

func TestFileTooLarge(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "big.bin")
	if err := os.WriteFile(p, bytes.Repeat([]byte{1}, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, storage.Config{MaxInputBytes: 4095})
	if _, err := s.Open(context.Background(), p); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Open = %v, want ErrTooLarge", err)
	}
}
