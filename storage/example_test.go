package storage_test

import (
	"errors"
	"fmt"

	"github.com/transcoder/transcoder/storage"
)

func ExampleJoin() {
	for _, prefix := range []string{"file:///out/hls/", "/out/hls/", "nats://media/job-1/hls/", "s3://videos/job-1/"} {
		u, err := storage.Join(prefix, "seg_00001.ts")
		fmt.Println(u, err)
	}
	_, err := storage.Join("file:///out/hls/", "../etc/passwd")
	fmt.Println(errors.Is(err, storage.ErrRejected))
	// Output:
	// file:///out/hls/seg_00001.ts <nil>
	// /out/hls/seg_00001.ts <nil>
	// nats://media/job-1/hls/seg_00001.ts <nil>
	// s3://videos/job-1/seg_00001.ts <nil>
	// true
}

func ExampleCheck() {
	fmt.Println(storage.Check("https://cdn.example.com/in/clip.mp4"))
	fmt.Println(storage.Check("concat:/a.mp4|/b.mp4"))
	fmt.Println(storage.Check("ftp://example.com/clip.mp4"))
	// Output:
	// <nil>
	// storage: check concat:/a.mp4|/b.mp4: ffmpeg protocol "concat" is not allowed (supported: file:///abs/path (or /abs/path), http://, https://, nats://BUCKET/KEY, s3://BUCKET/KEY)
	// storage: check ftp://example.com/clip.mp4: scheme "ftp" is not supported (supported: file:///abs/path (or /abs/path), http://, https://, nats://BUCKET/KEY, s3://BUCKET/KEY)
}
