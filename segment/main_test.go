package segment_test

import (
	"os"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
)

// TestMain runs the tests, then fails the run if a goroutine leaked. It is in the external
// test package because testenv imports worker, which imports this package.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
