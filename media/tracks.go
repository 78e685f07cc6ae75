package media

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/transcoder/transcoder/ffmpeg"
	"github.com/transcoder/transcoder/job"
	"github.com/transcoder/transcoder/segment"
)

// plainTracks reports whether an mp4/mov head shows at most one audio track and no subtitle
// or caption track: a job that asks only for the default tracks (audio_tracks "default" or
// "all", subtitles "all") then plans the same without a probe.
func plainTracks(head []byte) bool {
	moov, ok := childBox(head, "moov")
	if !ok {
		return false
	}
	audio, plain := 0, true
	ok = eachBox(moov, func(typ string, trak []byte) bool {
		if typ != "trak" {
			return true
		}
		switch handler(trak) {
		case "soun":
			audio++
			plain = audio < 2
		case "sbtl", "text", "subt", "subp", "clcp":
			plain = false
		}
		return plain
	})
	return ok && plain
}

// burnPath is the file a burned text track of output i is written to.
func (e *Engine) burnPath(t *Task, i int) string {
	return filepath.Join(e.cfg.SpoolDir, fmt.Sprintf("transcoder-burn-%s-%d-%d.ass", t.ID, t.Attempt, i))
}

// sidecarPath is the spool file of the plan's sidecar subtitle file k.
func (e *Engine) sidecarPath(t *Task, k int) string {
	return filepath.Join(e.cfg.SpoolDir, fmt.Sprintf("transcoder-subs-%s-%d-%d.srt", t.ID, t.Attempt, k))
}

// placeTrackFiles puts the spool files of the sidecar subtitles and the burned tracks into the
// final spec (its outputs' videos are copied before they change: the job plan's are shared).
func (e *Engine) placeTrackFiles(t *Task, p *Plan) {
	p.Spec.SubtitleInputs = append([]ffmpeg.Input(nil), p.Spec.SubtitleInputs...)
	for k := range p.Spec.SubtitleInputs {
		p.Spec.SubtitleInputs[k].Path = e.sidecarPath(t, k)
	}
	for i, po := range p.Outputs {
		src := po.BurnText
		if src == nil {
			continue
		}
		path := e.burnPath(t, i)
		if src.Input > 0 {
			path = e.sidecarPath(t, src.Input-1) // already SRT, checked
		}
		for _, k := range po.Spec {
			if v := p.Spec.Outputs[k].Video; v != nil && v.Burn != nil && !v.Burn.Image {
				vc, b := *v, *v.Burn
				b.Path = path
				vc.Burn = &b
				p.Spec.Outputs[k].Video = &vc
			}
		}
	}
}

// trackFiles fetches, checks and spools the plan's sidecar subtitle files and writes the text
// tracks it burns from the input (spooled for that: see prepare) before ffmpeg starts. It
// returns the files made, for the caller to remove.
func (e *Engine) trackFiles(ctx context.Context, t *Task, p *Plan, in *input) ([]string, error) {
	var files []string
	for k, sc := range p.Sidecars {
		path := p.Spec.SubtitleInputs[k].Path
		files = append(files, path)
		if err := e.fetchSidecar(ctx, sc, path); err != nil {
			return files, err
		}
	}
	for i, po := range p.Outputs {
		if po.BurnText == nil || po.BurnText.Input > 0 {
			continue
		}
		path := e.burnPath(t, i)
		files = append(files, path)
		src := in.filePath()
		if src == "" {
			return files, &job.Error{Class: job.ClassInternal, Reason: "burn_subtitles: the input was not spooled"}
		}
		if err := e.cfg.FFmpeg.ExtractSubtitle(ctx, ffmpeg.Input{Path: src}, p.Spec.Program, po.BurnText.N, path); err != nil {
			return files, fmt.Errorf("outputs[%d].burn_subtitles: %w", i, err)
		}
	}
	return files, nil
}

// fetchSidecar reads a subtitles_in file through storage (at most job.MaxSidecarBytes), parses
// it and writes its cues to path as SRT: what ffmpeg reads is what the worker checked.
func (e *Engine) fetchSidecar(ctx context.Context, sc job.Sidecar, path string) error {
	field := fmt.Sprintf("outputs[%d].subtitles_in", sc.Output)
	r, err := e.cfg.Storage.Open(ctx, sc.In.URL)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", field, sc.In.URL, err)
	}
	defer func() { _ = r.Close() }()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(r, job.MaxSidecarBytes+1)); err != nil {
		return fmt.Errorf("%s: read %s: %w", field, sc.In.URL, err)
	}
	if buf.Len() > job.MaxSidecarBytes {
		return &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("%s: %s is larger than %d bytes", field, sc.In.URL, job.MaxSidecarBytes)}
	}
	cues, err := segment.ParseSubtitles(buf.Bytes())
	if err != nil {
		return &job.Error{Class: job.ClassInvalidInput, Reason: fmt.Sprintf("%s: %s: %v", field, sc.In.URL, err), Err: err}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("subtitles spool: %w", err)
	}
	err = segment.WriteSRT(f, cues)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeFiles removes the spool files trackFiles made.
func removeFiles(files []string) {
	for _, f := range files {
		_ = os.Remove(f) // absent when its step failed first
	}
}
