package testenv

import (
	"path/filepath"
	"runtime"
	"testing"
)

// Realworld is the path of a real-world file kept for tests in testdata/realworld (see its
// README for where each comes from and its licence).
func Realworld(t testing.TB, name string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate testdata")
	}
	return filepath.Join(filepath.Dir(self), "testdata", "realworld", name)
}
