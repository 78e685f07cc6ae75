package natsembed_test

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/transcoder/transcoder/natsembed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestListeningAndInProcess(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", ""} {
		s, err := natsembed.Start(natsembed.Config{Listen: listen, DataDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.URL(); (listen == "") != (got == "") || (listen != "" && !strings.HasPrefix(got, "nats://127.0.0.1:")) {
			t.Errorf("listen %q: URL %q", listen, got)
		}
		nc, err := s.Connect()
		if err != nil {
			t.Fatal(err)
		}
		sub, err := nc.SubscribeSync("x")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("x", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "hi" {
			t.Errorf("round trip: %v %v", m, err)
		}
		nc.Close()
		s.Close()
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := natsembed.Start(natsembed.Config{}); err == nil {
		t.Error("no DataDir accepted")
	}
	if _, err := natsembed.Start(natsembed.Config{Listen: "nonsense", DataDir: t.TempDir()}); err == nil {
		t.Error("bad Listen accepted")
	}
	s, err := natsembed.Start(natsembed.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := strings.TrimPrefix(s.URL(), "nats://")
	if _, err := natsembed.Start(natsembed.Config{Listen: addr, DataDir: t.TempDir(), ReadyTimeout: time.Second}); err == nil {
		t.Error("second server on a busy port started")
	}
}
