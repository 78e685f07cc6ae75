package job

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/transcoder/transcoder/ffmpeg"
)

// resolved checks a plain (single file) output and returns it resolved.
func resolved(container string, v *Video, a *Audio, field string) (ResolvedOutput, error) {
	if err := checkEncode(container, v, a, 0, field, field); err != nil {
		return ResolvedOutput{}, err
	}
	return ResolvedOutput{Container: container, Video: v, Audio: a}, nil
}

// checkEncode checks an encoded output: its container, its codecs and every encoder option.
// Past the codec names (the job's own), the rules are package ffmpeg's: the output is planned
// as PlanMedia plans it (planVideo, planAudio) and validated by the argv builder's own checks,
// so a job that validates cannot fail on an option when its ffmpeg starts. The output's own
// fields (container, segment) are named under field, its video and audio options under
// stream (a ladder rung's video is under the rung, its segment under the output).
func checkEncode(container string, v *Video, a *Audio, seg time.Duration, field, stream string) error {
	if err := checkCodecs(container, v, a, field, stream); err != nil {
		return err
	}
	out := ffmpeg.Output{Container: container, Segment: seg, Video: planVideo(v), Audio: planAudio(a, nil)}
	return specFieldError(out.Validate(), field, stream)
}

// checkCodecs checks that the container is known and carries the codecs named, in the job's
// names: which encoder goes in which container is package ffmpeg's table.
func checkCodecs(container string, v *Video, a *Audio, field, stream string) error {
	if !slices.Contains(ffmpeg.Containers(), container) {
		known := append(ffmpeg.Containers(), ContainerHLS, ContainerDASH, ContainerJPEG)
		sort.Strings(known)
		return &FieldError{field + ".container", fmt.Sprintf("unknown container %q (known: %s)", container, strings.Join(known, ", "))}
	}
	if v != nil && !ffmpeg.CarriesVideo(container, videoEncoders[v.Codec]) {
		return &FieldError{stream + ".video.codec", fmt.Sprintf("%q cannot go in %s (allowed: %s)", v.Codec, container, carried(container, videoEncoders, ffmpeg.CarriesVideo))}
	}
	if a != nil && !ffmpeg.CarriesAudio(container, audioEncoders[a.Codec]) {
		return &FieldError{stream + ".audio.codec", fmt.Sprintf("%q cannot go in %s (allowed: %s)", a.Codec, container, carried(container, audioEncoders, ffmpeg.CarriesAudio))}
	}
	return nil
}

// carried lists the job's codec names whose encoders the container carries.
func carried(container string, encoders map[string]string, carries func(container, encoder string) bool) string {
	var names []string
	for name, enc := range encoders {
		if carries(container, enc) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// specParents maps the parts of an ffmpeg.Output that a job sets to the job's field and type:
// the job's Video, Audio and Thumbnails name their options as ffmpeg's Video, Audio and Images
// do, so an option's JSON name is found from its Go name, with no table to keep in step.
var specParents = map[string]struct {
	name string
	typ  reflect.Type
}{
	"Video":  {"video", reflect.TypeFor[Video]()},
	"Audio":  {"audio", reflect.TypeFor[Audio]()},
	"Images": {"thumbnails", reflect.TypeFor[Thumbnails]()},
}

// specOutputFields are the fields of an ffmpeg.Output a job sets itself.
var specOutputFields = map[string]string{"Container": "container", "Segment": "segment"}

// specFieldError turns a *ffmpeg.SpecError on an output (its Field relative to the output) into
// a *FieldError on the job field that set the option. An option the plan sets and the job does
// not (Fit, Track, Duration) names the stream or the output it belongs to.
func specFieldError(err error, field, stream string) error {
	if err == nil {
		return nil
	}
	var se *ffmpeg.SpecError
	if !errors.As(err, &se) {
		return &FieldError{field, err.Error()}
	}
	head, rest, _ := strings.Cut(se.Field, ".")
	if name, ok := specOutputFields[head]; ok {
		return &FieldError{field + "." + name, se.Msg}
	}
	p, ok := specParents[head]
	if !ok {
		return &FieldError{field, se.Msg}
	}
	f := stream + "." + p.name
	if sf, ok := p.typ.FieldByName(rest); ok && rest != "" {
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		f += "." + name
	}
	return &FieldError{f, se.Msg}
}
