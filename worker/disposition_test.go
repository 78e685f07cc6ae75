package worker

import (
	"testing"
	"time"

	"github.com/transcoder/transcoder/job"
)

// TestCountedAttempts: deliveries handed on (Passed) or handed back at a shutdown (Stopped)
// neither use up the delivery limit nor lengthen the backoff of the job's own failures.
func TestCountedAttempts(t *testing.T) {
	backoff := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	for _, c := range []struct {
		attempt   int
		passed    int
		stopped   int
		act       action
		delay     time.Duration
		note      string
		shutdown  bool
		wantCount int
	}{
		{attempt: 7, stopped: 6, act: actNak, delay: time.Second, note: " (attempt 1 of 3)", wantCount: 1},
		{attempt: 7, stopped: 4, passed: 1, act: actNak, delay: 2 * time.Second, note: " (attempt 2 of 3)", wantCount: 2},
		{attempt: 7, stopped: 4, act: actTerm, note: " (attempt 3 of 3)", wantCount: 3},
		{attempt: 9, stopped: 6, act: actNak, shutdown: true, note: " (attempt 3 of 3)", wantCount: 3}, // a stop is handed back at once
		{attempt: 3, act: actTerm, note: " (attempt 3 of 3)", wantCount: 3},                            // kills record nothing: they count
	} {
		r := &run{attempt: c.attempt, passed: c.passed, stopped: c.stopped}
		n := r.counted()
		act, delay := decide(job.ClassTransient, n, 3, backoff, c.shutdown, false)
		if n != c.wantCount || act != c.act || delay != c.delay || retryNote(n, 3) != c.note {
			t.Errorf("delivery %d, %d passed, %d stopped: counted %d, decide %v %s, note %q; want %d, %v %s, %q",
				c.attempt, c.passed, c.stopped, n, act, delay, retryNote(n, 3), c.wantCount, c.act, c.delay, c.note)
		}
	}
}
