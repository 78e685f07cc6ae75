package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/transcoder/transcoder/storage"
)

// uploadName is the object name of an uploaded file: its base name, reduced to characters
// that are safe in a URL path and an object key.
func uploadName(path string) string {
	b := []byte(filepath.Base(path))
	for i, c := range b {
		if ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'; !ok {
			b[i] = '_'
		}
	}
	if s := strings.Trim(string(b), "."); s != "" {
		return s
	}
	return "input"
}

// copyChunks copies r to w through one 1 MiB buffer: a file upload or download of any size
// holds no more than that.
func copyChunks(w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if _, werr := w.Write(buf[:m]); werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// clientStore is a storage.Store for a CLI command: nats:// through nc, s3:// at
// TRANSCODER_S3_ENDPOINT (TRANSCODER_S3_REGION, TRANSCODER_S3_SECURE=false for plain HTTP;
// credentials as for workers), everything else with the defaults a client on the user's machine
// expects (its own files; private networks allowed, since the user is reaching their own
// network, not a worker reaching someone else's).
func clientStore(nc *nats.Conn) (*storage.Store, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	s3 := storage.S3Config{Endpoint: os.Getenv("TRANSCODER_S3_ENDPOINT"), Region: os.Getenv("TRANSCODER_S3_REGION"), Secure: true}
	if v, err := strconv.ParseBool(os.Getenv("TRANSCODER_S3_SECURE")); err == nil {
		s3.Secure = v
	}
	return storage.New(storage.Config{JetStream: js, AllowPrivateNetworks: true, S3: s3})
}

// uploadFile puts the local file at url (nats://BUCKET/KEY), chunk by chunk.
func uploadFile(ctx context.Context, nc *nats.Conn, path, url string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("upload: %w", err)
	}
	defer func() { _ = f.Close() }()
	st, err := clientStore(nc)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	w, err := st.Create(ctx, url, storage.CreateOptions{})
	if err != nil {
		return 0, fmt.Errorf("upload: %w", err)
	}
	n, err := copyChunks(w, f)
	if err != nil {
		w.Abort()
		return n, fmt.Errorf("upload %s: %w", path, err)
	}
	if err := w.Commit(ctx); err != nil {
		return n, fmt.Errorf("upload %s: %w", path, err)
	}
	return n, nil
}

func getCommand(stdout io.Writer) *cobra.Command {
	var (
		cf  clientFlags
		out string
	)
	c := &cobra.Command{
		Use:   "get URL -o FILE",
		Short: "Download an output (nats://BUCKET/KEY, s3://, http(s)://) to a local file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageError{errors.New("-o FILE is required")}
			}
			s, err := cf.open(cmd.Context())
			if err != nil {
				return err
			}
			return s.done(download(s, args[0], out, stdout))
		},
	}
	cf.register(c)
	c.Flags().StringVarP(&out, "output", "o", "", "local file to write")
	return c
}

// download writes the object at url to the local file out, beside it first and then renamed:
// an interrupted get leaves no half file.
func download(s *session, url, out string, stdout io.Writer) error {
	st, err := clientStore(s.nc)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := st.Open(s.ctx, url)
	if err != nil {
		return err
	}
	defer func() { _ = r.Close() }()
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".*.part")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	n, err := copyChunks(tmp, r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	if err := os.Rename(tmp.Name(), abs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s  %d bytes\n", abs, n)
	return nil
}
