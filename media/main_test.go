package media_test

import (
	"os"
	"testing"

	"github.com/transcoder/transcoder/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
