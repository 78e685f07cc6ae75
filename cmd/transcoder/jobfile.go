package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/worker"
)

// maxJobFile bounds a --job file: a job is a few KiB; the wire format's own limits (outputs,
// metadata) are far under this.
const maxJobFile = 1 << 20

// jobFileFlags are the flags that describe the job, which --job FILE replaces: given together
// they are refused rather than merged, so that what runs is exactly the file (README.md, "Jobs
// from a file"). --presets (presets the job may name) and the commands' own flags stay.
var jobFileFlags = []string{"preset", "output", "priority", "timeout", "id", "meta", "faststart", "split", "chunk"}

// fromFile reads and validates the job of --job FILE ("-" for stdin). input is the command's
// INPUT argument, which must be absent: the job names its own.
func (f *jobFlags) fromFile(input string, presets job.Presets) (*job.Job, error) {
	if input != "" {
		return nil, usageError{fmt.Errorf("--job FILE: the job names its input; give no INPUT argument")}
	}
	var set []string
	for _, name := range jobFileFlags {
		if f.cmd != nil && f.cmd.Flags().Changed(name) {
			set = append(set, "--"+name)
		}
	}
	if len(set) > 0 {
		return nil, usageError{fmt.Errorf("--job FILE is the whole job: %s cannot be combined with it (set the field in the file)", strings.Join(set, ", "))}
	}
	data, err := readJobFile(f.jobFile)
	if err != nil {
		return nil, err
	}
	j, err := job.Decode(data)
	if err != nil {
		return nil, usageError{fmt.Errorf("--job %s: %w", f.jobFile, err)}
	}
	worker.Prepare(j)
	if err := j.Validate(presets); err != nil {
		return nil, usageError{fmt.Errorf("--job %s: %w", f.jobFile, err)}
	}
	return j, nil
}

func readJobFile(name string) ([]byte, error) {
	r := io.Reader(os.Stdin)
	if name != "-" {
		fh, err := os.Open(name)
		if err != nil {
			return nil, usageError{fmt.Errorf("--job: %w", err)}
		}
		defer func() { _ = fh.Close() }()
		r = fh
	}
	data, err := io.ReadAll(io.LimitReader(r, maxJobFile+1))
	if err != nil {
		return nil, fmt.Errorf("--job: %w", err)
	}
	if len(data) > maxJobFile {
		return nil, usageError{errors.New("--job: larger than 1 MiB")}
	}
	return data, nil
}
