package job

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/storage"
)

// ErrInvalid is wrapped by every validation error: the job itself is wrong and retrying it
// cannot help.
var ErrInvalid = errors.New("job: invalid")

// FieldError names the field of the job that is wrong and why.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return "job: " + e.Field + ": " + e.Msg }

// Unwrap makes every FieldError match ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Limits of a job, chosen so that one job cannot occupy a worker without bound.
const (
	MaxOutputs   = 8
	MaxTimeout   = 24 * time.Hour
	maxMetadata  = 32
	maxMetaKey   = 64
	maxMetaValue = 1024
	maxIDLen     = 128
)

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// ValidID reports whether id can name a job: it is used as a NATS subject token, a KV key and
// part of temporary file names, so it is restricted to letters, digits, '-' and '_'.
func ValidID(id string) bool { return len(id) <= maxIDLen && idRe.MatchString(id) }

// Validate checks the job against the presets and returns the first problem as a *FieldError.
func (j *Job) Validate(presets Presets) error {
	if j.Version != 0 && j.Version != Version {
		return &FieldError{"version", fmt.Sprintf("unsupported version %d (this worker reads %d)", j.Version, Version)}
	}
	if sp := j.Split; sp != nil {
		switch sp.Mode {
		case "", SplitAuto, SplitOn, SplitOff:
		default:
			return &FieldError{"split.mode", fmt.Sprintf("%q: want on, off or auto", sp.Mode)}
		}
		if c := time.Duration(sp.Chunk); c != 0 && (c < time.Second || c > time.Hour) {
			return &FieldError{"split.chunk", fmt.Sprintf("%s: want 1s to 1h", c)}
		}
	}
	if err := j.validateClip(); err != nil {
		return err
	}
	if err := j.validateSplit(); err != nil {
		return err
	}
	if j.ID != "" && !ValidID(j.ID) {
		return &FieldError{"id", "must be 1-128 letters, digits, '-' or '_', starting with a letter or digit"}
	}
	if j.Input == "" {
		return &FieldError{"input", "required"}
	}
	if _, err := ParseLocation(j.Input); err != nil {
		return &FieldError{"input", err.Error()}
	}
	if j.Preset != "" {
		if _, ok := presets[j.Preset]; !ok {
			return &FieldError{"preset", fmt.Sprintf("unknown preset %q (known: %s)", j.Preset, strings.Join(presets.Names(), ", "))}
		}
	}
	if j.Program < 0 || j.Program > ffmpeg.MaxProgram {
		return &FieldError{"program", fmt.Sprintf("must be a programme id 1..%d (0 or absent: the first with video), got %d", ffmpeg.MaxProgram, j.Program)}
	}
	if len(j.Outputs) == 0 {
		return &FieldError{"outputs", "at least one output is required"}
	}
	if len(j.Outputs) > MaxOutputs {
		return &FieldError{"outputs", fmt.Sprintf("at most %d outputs", MaxOutputs)}
	}
	in, _ := ParseLocation(j.Input)
	seen := map[string]bool{}
	runs := 0 // ffmpeg outputs, at most
	for i, o := range j.Outputs {
		f := fmt.Sprintf("outputs[%d]", i)
		if o.URL == "" {
			return &FieldError{f + ".url", "required"}
		}
		loc, err := ParseLocation(o.URL)
		if err != nil {
			return &FieldError{f + ".url", err.Error()}
		}
		if seen[loc.String()] {
			return &FieldError{f + ".url", "same as another output"}
		}
		if loc.String() == in.String() {
			return &FieldError{f + ".url", "same as the input"}
		}
		seen[loc.String()] = true
		r, err := j.Resolve(i, presets)
		if err != nil {
			return err
		}
		if j.Clip != nil && r.Thumbnails != nil {
			// Thumbnail times are spread over the whole input.
			return &FieldError{"clip", fmt.Sprintf("not with thumbnails (%s)", f)}
		}
		runs += r.maxSpecOutputs()
	}
	if runs > ffmpeg.MaxOutputs {
		return &FieldError{"outputs", fmt.Sprintf("the outputs make up to %d ffmpeg outputs (every rung of a ladder and its audio count), more than the %d of one ffmpeg run", runs, ffmpeg.MaxOutputs)}
	}
	if j.Timeout < 0 || time.Duration(j.Timeout) > MaxTimeout {
		return &FieldError{"timeout", fmt.Sprintf("must be between 0 and %s", MaxTimeout)}
	}
	switch j.Priority {
	case "", PriorityHigh, PriorityNormal, PriorityLow:
	default:
		return &FieldError{"priority", fmt.Sprintf("must be high, normal or low, not %q", j.Priority)}
	}
	if len(j.Metadata) > maxMetadata {
		return &FieldError{"metadata", fmt.Sprintf("at most %d entries", maxMetadata)}
	}
	for k, v := range j.Metadata {
		if k == "" || len(k) > maxMetaKey || len(v) > maxMetaValue {
			return &FieldError{"metadata", fmt.Sprintf("keys 1-%d bytes, values at most %d bytes", maxMetaKey, maxMetaValue)}
		}
	}
	return nil
}

// Location is a parsed input or output URL: a local file, or a URL of a remote store
// (http, https, nats object store, s3) that the worker's storage opens.
type Location struct {
	Scheme string // "file", "http", "https", "nats", "s3"
	Path   string // file: absolute and cleaned; nats/s3: the key
	// Host is the http(s) host, or the nats/s3 bucket.
	Host string
	raw  string // remote URLs as given
}

// String returns the location as a URL: file:///abs/path for files, the URL as given otherwise.
func (l Location) String() string {
	if l.Scheme != "file" {
		return l.raw
	}
	return (&url.URL{Scheme: l.Scheme, Path: l.Path}).String()
}

// IsFile reports whether the location is on the local disk.
func (l Location) IsFile() bool { return l.Scheme == "file" }

// ParseLocation accepts "file:///abs/path", an absolute path, http(s)://HOST/PATH,
// nats://BUCKET/KEY and s3://BUCKET/KEY (syntax only: which hosts and directories a worker
// may reach is its storage configuration's call, at the time it connects). Anything ffmpeg could read as a
// protocol or an option (concat:, subfile,, data:, ffmpeg's file:path without "//", a leading
// '-') and relative paths are refused: the worker, not ffmpeg, opens inputs and outputs, and
// ffmpeg only ever gets pipes and spool files. The length bound, the ffmpeg protocols and the
// bucket names are package storage's, which opens these URLs.
func ParseLocation(s string) (Location, error) {
	if len(s) > storage.MaxURL {
		return Location{}, fmt.Errorf("longer than %d bytes", storage.MaxURL)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return Location{}, errors.New("contains control characters")
	}
	if strings.HasPrefix(s, "-") {
		return Location{}, errors.New("must not start with '-' (an ffmpeg option)")
	}
	if p, ok := storage.FFmpegProtocol(s); ok {
		return Location{}, fmt.Errorf("ffmpeg protocol %q is not allowed (use file:///abs/path)", p)
	}
	if lower := strings.ToLower(s); strings.HasPrefix(lower, "file:") && !strings.HasPrefix(lower, "file://") {
		return Location{}, errors.New("ffmpeg-style file: path is not allowed (use file:///abs/path)")
	}
	if strings.HasPrefix(s, "/") {
		return Location{Scheme: "file", Path: filepath.Clean(s)}, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return Location{}, fmt.Errorf("%q is neither an absolute path nor a URL", s)
	}
	switch strings.ToLower(u.Scheme) {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, errors.New("file URLs must not name a host (use file:///abs/path)")
		}
		if !strings.HasPrefix(u.Path, "/") {
			return Location{}, errors.New("file URL must hold an absolute path")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return Location{}, errors.New("file URL must not have a query or fragment")
		}
		// Escapes decode after the check on the raw string: check the path itself too.
		if strings.ContainsFunc(u.Path, unicode.IsControl) {
			return Location{}, errors.New("contains control characters")
		}
		return Location{Scheme: "file", Path: filepath.Clean(u.Path)}, nil
	case "http", "https":
		if u.Host == "" || u.Hostname() == "" {
			return Location{}, errors.New("http URL without a host")
		}
		if u.User != nil {
			return Location{}, errors.New("credentials in the URL are not allowed (use a presigned URL or the worker's configuration)")
		}
		if strings.ContainsFunc(u.Path, unicode.IsControl) {
			return Location{}, errors.New("contains control characters")
		}
		return Location{Scheme: strings.ToLower(u.Scheme), Host: u.Host, Path: u.Path, raw: s}, nil
	case "nats", "s3":
		if u.Host == "" {
			return Location{}, fmt.Errorf("%s URL needs a bucket: %s://BUCKET/KEY", u.Scheme, u.Scheme)
		}
		key := strings.TrimPrefix(u.Path, "/")
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
			return Location{}, fmt.Errorf("%s URL is %s://BUCKET/KEY, with nothing else", u.Scheme, u.Scheme)
		}
		if err := storage.CheckBucket(strings.ToLower(u.Scheme), u.Host); err != nil {
			return Location{}, err
		}
		if strings.ContainsFunc(key, unicode.IsControl) {
			return Location{}, errors.New("contains control characters")
		}
		if key == "" || strings.Contains("/"+key+"/", "/../") || strings.Contains("/"+key+"/", "/./") || strings.Contains(key, "//") {
			return Location{}, fmt.Errorf("%s URL needs a key without empty, '.' or '..' parts: %s://BUCKET/KEY", u.Scheme, u.Scheme)
		}
		return Location{Scheme: strings.ToLower(u.Scheme), Host: u.Host, Path: key, raw: s}, nil
	default:
		return Location{}, fmt.Errorf("scheme %q is not supported (file, http, https, nats, s3)", u.Scheme)
	}
}
