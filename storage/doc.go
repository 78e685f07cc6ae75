// Package storage opens job inputs and creates job outputs by URL. The worker, never ffmpeg,
// does all I/O: ffmpeg sees only pipes and spool files.
//
// # Schemes
//
//   - file:///abs/path, or a plain /abs/path. The path must resolve (symlinks of the part that
//     exists resolved, no "..") inside Config.FileRoots; where an opened file or directory
//     really is, is checked again through /proc after opening. An output is written to a hidden
//     ".NAME.JOBID.ATTEMPT.part" beside its final name (parts of earlier attempts of the job are
//     removed), with writeback started as it goes; Commit fsyncs it, renames it into place and
//     fsyncs the directory. LocalWriter.LocalPath names the part file for a probe before Commit.
//   - http:// and https://. Inputs are streamed by GET; a transfer that breaks (dropped
//     connection, a body shorter than its Content-Length, no progress for IdleTimeout) is
//     resumed with "Range: bytes=N-" and checked (206 with a matching Content-Range, same ETag
//     or Last-Modified, same size; a server that ignores Range is read again and the first N
//     bytes skipped), Retries times in a row without progress, with backoff. Outputs are one
//     streamed, chunked PUT: Write blocks while the server does not read; Commit ends the body
//     and requires a 2xx; Abort cancels the request, so the server never sees the body's end
//     (whether a server publishes a partial upload is its own business). Connections go only to
//     addresses the policy allows (Config.AllowPrivateNetworks), checked by the dialer on the
//     address actually connected to, so redirects (at most 5, to http/https, for GET and HEAD
//     only) and DNS answers cannot lead around it. No proxy is used, and no transparent
//     decompression.
//   - nats://BUCKET/KEY: a JetStream object store (Config.JetStream). Outputs are streamed into
//     ObjectStore.Put, which publishes the object's info only after all its chunks: until
//     Commit nothing is visible, and an aborted upload purges its chunks and leaves any earlier
//     version intact. The bucket is created on Create if missing, never on Open. Inputs are read
//     one chunk per request, at the reader's pace, and checked against the object's SHA-256.
//   - s3://BUCKET/KEY: an S3-compatible endpoint (Config.S3) through minio-go. Inputs are
//     streamed and resumed like HTTP ones (If-Match on the first ETag). Outputs are multipart
//     uploads whose parts are spooled to disk (at most PartSize, never in memory); nothing is
//     visible before CompleteMultipartUpload; Abort aborts the upload. Buckets are not created.
//
// Anything else (ftp:, data:, concat:, pipe:, ...) is refused with ErrUnsupportedScheme.
//
// # Errors
//
// Failed operations return *Error, which matches one of ErrNotFound, ErrForbidden (and
// ErrForbiddenAddress), ErrNotAllowedPath, ErrUnsupportedScheme, ErrTooLarge, ErrRejected
// (permanent) or ErrUnavailable (transient, see Transient), or carries the caller's context
// error. Messages never show a URL's query or password.
//
// # Memory
//
// No input or output is held in memory whole: readers stream, writers block (backpressure).
// Inputs larger than Config.MaxInputBytes fail with ErrTooLarge.
package storage
