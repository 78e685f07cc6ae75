package storage_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/transcoder/transcoder/storage"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		url  string
		kind error // nil: valid
		msg  string
	}{
		{"/abs/in.mp4", nil, ""},
		{"file:///abs/in.mp4", nil, ""},
		{"file://localhost/abs/in.mp4", nil, ""},
		{"file:///abs/with%20space.mp4", nil, ""},
		{"https://cdn.example.com/v.mp4?sig=abc", nil, ""},
		{"http://[2001:db8::1]:8080/v.mp4", nil, ""},
		{"nats://media/in/v.mp4", nil, ""},
		{"nats://my_bucket-1/k", nil, ""},
		{"s3://videos/in/v.mp4", nil, ""},
		{"", storage.ErrRejected, "empty"},
		{"relative/in.mp4", storage.ErrRejected, "neither an absolute path nor a URL"},
		{"-i /x.mp4", storage.ErrRejected, "'-'"},
		{"/abs/in\n.mp4", storage.ErrRejected, "control characters"},
		{"file:///abs/%0Ain.mp4", storage.ErrRejected, "control characters"},
		{"/abs/../etc/passwd", storage.ErrNotAllowedPath, `".."`},
		{"file:///abs/%2e%2e/etc/passwd", storage.ErrNotAllowedPath, `".."`},
		{"/abs/dir/", storage.ErrRejected, "directory"},
		{"file:/abs/in.mp4", storage.ErrRejected, "ffmpeg-style"},
		{"file://host/abs/in.mp4", storage.ErrRejected, "must not name a host"},
		{"file:///abs/in.mp4?x=1", storage.ErrRejected, "query"},
		{"concat:/a.mp4|/b.mp4", storage.ErrUnsupportedScheme, `"concat"`},
		{"subfile,,start,0,end,1,,:/a.mp4", storage.ErrUnsupportedScheme, `"subfile"`},
		{"data:video/mp4;base64,AAAA", storage.ErrUnsupportedScheme, `"data"`},
		{"pipe:0", storage.ErrUnsupportedScheme, `"pipe"`},
		{"ftp://example.com/v.mp4", storage.ErrUnsupportedScheme, `scheme "ftp" is not supported (supported: file:///abs/path`},
		{"gopher://example.com/v.mp4", storage.ErrUnsupportedScheme, "not supported"},
		{"https:///v.mp4", storage.ErrRejected, "no host"},
		{"https://user:secret@example.com/v.mp4", storage.ErrRejected, "credentials"},
		{"https://example.com:99999/v.mp4", storage.ErrRejected, "port"},
		{"nats://bad.bucket/k", storage.ErrRejected, "bucket"},
		{"nats://media", storage.ErrRejected, "missing object key"},
		{"nats://media/", storage.ErrRejected, "missing object key"},
		{"nats://media/a/../b", storage.ErrRejected, `".."`},
		{"nats://media/dir/", storage.ErrRejected, "end with '/'"},
		{"nats://media:4222/k", storage.ErrRejected, "port"},
		{"s3://Videos/k", storage.ErrRejected, "bucket"},
		{"s3://ab/k", storage.ErrRejected, "bucket"},
		{"s3://videos/k?versionId=1", storage.ErrRejected, "query"},
		{"/" + strings.Repeat("a", 5000), storage.ErrRejected, "longer than"},
	} {
		err := storage.Check(c.url)
		if c.kind == nil {
			if err != nil {
				t.Errorf("Check(%q) = %v, want nil", c.url, err)
			}
			continue
		}
		if !errors.Is(err, c.kind) {
			t.Errorf("Check(%q) = %v, want %v", c.url, err, c.kind)
			continue
		}
		if !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "storage: ") {
			t.Errorf("Check(%q) = %q, want it to say %q", c.url, err, c.msg)
		}
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct {
		prefix, name, want string
		kind               error
	}{
		{"file:///out/hls/", "seg_001.ts", "file:///out/hls/seg_001.ts", nil},
		{"file:///", "a.ts", "file:///a.ts", nil},
		{"/out/hls/", "v1/index.m3u8", "/out/hls/v1/index.m3u8", nil},
		{"file:///out/hls/", "seg 1.ts", "file:///out/hls/seg%201.ts", nil},
		{"nats://media/job/", "seg_001.ts", "nats://media/job/seg_001.ts", nil},
		{"nats://media/", "seg_001.ts", "nats://media/seg_001.ts", nil},
		{"s3://videos/a/b/", "seg_001.ts", "s3://videos/a/b/seg_001.ts", nil},
		{"https://up.example.com/hls/", "seg_001.ts", "https://up.example.com/hls/seg_001.ts", nil},
		{"file:///out/hls", "seg_001.ts", "", storage.ErrRejected},     // not a directory
		{"nats://media/job", "seg_001.ts", "", storage.ErrRejected},    // not a prefix
		{"file:///out/hls/", "../x.ts", "", storage.ErrRejected},       // escape
		{"file:///out/hls/", "/etc/x.ts", "", storage.ErrRejected},     // absolute
		{"file:///out/hls/", "", "", storage.ErrRejected},              // empty
		{"file:///out/hls/", "a\nb.ts", "", storage.ErrRejected},       // control
		{"https://h/hls/?sig=1", "a.ts", "", storage.ErrRejected},      // query
		{"ftp://h/hls/", "a.ts", "", storage.ErrUnsupportedScheme},     // scheme
		{"file:///out/../hls/", "a.ts", "", storage.ErrNotAllowedPath}, // ..
	} {
		got, err := storage.Join(c.prefix, c.name)
		if c.kind != nil {
			if !errors.Is(err, c.kind) {
				t.Errorf("Join(%q, %q) = %q, %v; want %v", c.prefix, c.name, got, err, c.kind)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Join(%q, %q) = %q, %v; want %q", c.prefix, c.name, got, err, c.want)
		}
		if err := storage.Check(got); err != nil {
			t.Errorf("Check(Join(%q, %q)) = %v", c.prefix, c.name, err)
		}
	}
}

func TestAddressPolicy(t *testing.T) {
	for _, c := range []struct {
		ip           string
		allowPrivate bool
		want         string // reason, "" = allowed
	}{
		{"93.184.216.34", false, ""},
		{"8.8.8.8", false, ""},
		{"2606:4700:4700::1111", false, ""},
		{"127.0.0.1", false, "loopback address"},
		{"127.8.9.10", false, "loopback address"},
		{"::1", false, "loopback address"},
		{"::ffff:127.0.0.1", false, "loopback address"},
		{"::ffff:10.1.2.3", false, "private address"},
		{"10.0.0.1", false, "private address"},
		{"172.16.0.1", false, "private address"},
		{"172.31.255.255", false, "private address"},
		{"172.32.0.1", false, ""},
		{"192.168.1.1", false, "private address"},
		{"fd12:3456::1", false, "private address"},
		{"fc00::1", false, "private address"},
		{"169.254.1.1", false, "link-local address"},
		{"fe80::1", false, "link-local address"},
		{"169.254.169.254", false, "cloud metadata address"},
		{"169.254.169.254", true, "cloud metadata address"},
		{"::ffff:169.254.169.254", true, "cloud metadata address"},
		{"fd00:ec2::254", false, "cloud metadata address"},
		{"fd00:ec2::254", true, "cloud metadata address"},
		{"100.64.0.1", false, "shared (CGNAT) address"},
		{"100.127.255.255", false, "shared (CGNAT) address"},
		{"100.128.0.1", false, ""},
		{"0.0.0.0", false, "unspecified address"},
		{"::", false, "unspecified address"},
		{"0.1.2.3", false, "reserved address"},
		{"224.0.0.1", false, "multicast address"},
		{"ff02::1", false, "multicast address"},
		{"255.255.255.255", false, "reserved address"},
		{"240.0.0.1", false, "reserved address"},
		{"192.0.2.1", false, "reserved address"},
		{"198.18.0.1", false, "reserved address"},
		{"2001:db8::1", false, "reserved address"},
		{"64:ff9b::7f00:1", false, "loopback address"}, // NAT64 of 127.0.0.1
		{"64:ff9b::808:808", false, ""},                // NAT64 of 8.8.8.8
		{"2002:a00:1::1", false, "private address"},    // 6to4 of 10.0.0.1
		{"::127.0.0.1", false, "non-global address"},   // IPv4-compatible (deprecated)
		{"fec0::1", false, "non-global address"},       // site-local (deprecated)
		{"127.0.0.1", true, ""},
		{"10.0.0.1", true, ""},
		{"fd12::1", true, ""},
	} {
		got := storage.AddrPolicyForTest(netip.MustParseAddr(c.ip), c.allowPrivate)
		if got != c.want {
			t.Errorf("policy(%s, allowPrivate=%v) = %q, want %q", c.ip, c.allowPrivate, got, c.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		cfg  storage.Config
		want string
	}{
		{storage.Config{FileRoots: []string{dir, "rel/dir"}}, "storage: FileRoots[1]: "},
		{storage.Config{FileRoots: []string{dir + "/missing"}}, "storage: FileRoots[0]: "},
		{storage.Config{IdleTimeout: -1}, "storage: IdleTimeout: "},
		{storage.Config{MaxInputBytes: -1}, "storage: MaxInputBytes: "},
		{storage.Config{TempDir: "tmp"}, "storage: TempDir: "},
		{storage.Config{S3: storage.S3Config{Endpoint: "http://localhost:9000"}}, "storage: S3.Endpoint: "},
		{storage.Config{S3: storage.S3Config{Endpoint: "localhost:9000", PartSize: 1 << 20}}, "storage: S3.PartSize: "},
		{storage.Config{S3: storage.S3Config{Endpoint: "localhost:9000", AccessKey: "k"}}, "storage: S3.AccessKey: "},
	} {
		_, err := storage.New(c.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error starting %q", c.cfg, err, c.want)
		}
	}
	s, err := storage.New(storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check("nats://media/k"); !errors.Is(err, storage.ErrUnsupportedScheme) || !strings.Contains(err.Error(), "JetStream") {
		t.Errorf("nats:// without JetStream: %v", err)
	}
	if err := s.Check("s3://media/k"); !errors.Is(err, storage.ErrUnsupportedScheme) || !strings.Contains(err.Error(), "S3 endpoint") {
		t.Errorf("s3:// without endpoint: %v", err)
	}
}

func TestTransient(t *testing.T) {
	if !storage.Transient(&storage.Error{Op: "open", Kind: storage.ErrUnavailable}) {
		t.Error("ErrUnavailable is transient")
	}
	for _, k := range []error{storage.ErrNotFound, storage.ErrForbidden, storage.ErrForbiddenAddress, storage.ErrRejected, storage.ErrTooLarge, storage.ErrNotAllowedPath, storage.ErrUnsupportedScheme} {
		if storage.Transient(&storage.Error{Op: "open", Kind: k}) {
			t.Errorf("%v is not transient", k)
		}
	}
	if !errors.Is(storage.ErrForbiddenAddress, storage.ErrForbidden) {
		t.Error("ErrForbiddenAddress matches ErrForbidden")
	}
}
