package thumbs_test

import (
	"slices"
	"testing"
	"time"

	"github.com/transcoder/transcoder/thumbs"
)

func TestTimesAndSlots(t *testing.T) {
	t.Parallel()
	const s, ms = time.Second, time.Millisecond
	tests := []struct {
		name               string
		count              int
		interval, duration time.Duration
		times, slots       []time.Duration
	}{
		{"spread", 5, 0, 10 * s, []time.Duration{1 * s, 3 * s, 5 * s, 7 * s, 9 * s}, []time.Duration{0, 2 * s, 4 * s, 6 * s, 8 * s}},
		{"spread wins over interval", 2, time.Hour, 1 * s, []time.Duration{250 * ms, 750 * ms}, []time.Duration{0, 500 * ms}},
		{"spread, thirds round down", 3, 0, 10 * s,
			[]time.Duration{1666666666, 5 * s, 8333333333}, []time.Duration{0, 3333333333, 6666666666}},
		{"one", 1, 0, 7 * s, []time.Duration{3500 * ms}, []time.Duration{0}},
		{"interval, count", 3, 2 * s, 0, []time.Duration{0, 2 * s, 4 * s}, []time.Duration{0, 2 * s, 4 * s}},
		{"interval over duration", 0, 3 * s, 10 * s, []time.Duration{0, 3 * s, 6 * s, 9 * s}, []time.Duration{0, 3 * s, 6 * s, 9 * s}},
		{"interval divides duration", 0, 2 * s, 6 * s, []time.Duration{0, 2 * s, 4 * s}, []time.Duration{0, 2 * s, 4 * s}},
		{"interval longer than duration", 0, time.Minute, s, []time.Duration{0}, []time.Duration{0}},
		{"unbounded", 0, s, 0, nil, nil},
		{"count without duration or interval", 4, 0, 0, nil, nil},
		{"nothing", 0, 0, 0, nil, nil},
		{"negative", -1, s, s, nil, nil},
	}
	for _, tt := range tests {
		if got := thumbs.Times(tt.count, tt.interval, tt.duration); !slices.Equal(got, tt.times) {
			t.Errorf("%s: Times = %v, want %v", tt.name, got, tt.times)
		}
		if got := thumbs.Slots(tt.count, tt.interval, tt.duration); !slices.Equal(got, tt.slots) {
			t.Errorf("%s: Slots = %v, want %v", tt.name, got, tt.slots)
		}
	}
}

func TestTimesCapped(t *testing.T) {
	t.Parallel()
	if n := len(thumbs.Times(0, time.Second, 24*time.Hour)); n != thumbs.MaxImages {
		t.Errorf("%d images for a day every second, want MaxImages", n)
	}
	if n := len(thumbs.Times(5000, 0, time.Hour)); n != thumbs.MaxImages {
		t.Errorf("%d images for Count 5000, want MaxImages", n)
	}
	// No overflow on long durations: the last image of 1000 over 100 days is in its slot.
	d := 100 * 24 * time.Hour
	times := thumbs.Times(1000, 0, d)
	if last := times[len(times)-1]; last != d-d/2000 {
		t.Errorf("last = %v, want %v", last, d-d/2000)
	}
}
