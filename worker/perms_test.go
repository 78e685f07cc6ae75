package worker

import "testing"

// TestMayPublish: the client's reading of its permissions decides as nats-server does:
// wildcards by token, a deny over an allow, no publish rules allow everything.
func TestMayPublish(t *testing.T) {
	p := &permissions{restrictsPub: true,
		allow: []string{"transcode.jobs.normal", "transcode.cancel.*", "$O.uploads.>", "$JS.API.CONSUMER.CREATE.>"},
		deny:  []string{"$JS.API.CONSUMER.*.TRANSCODE_JOBS.>"}}
	for subject, want := range map[string]bool{
		"transcode.jobs.normal":                    true,
		"transcode.jobs.high":                      false,
		"transcode.cancel.j1":                      true,
		"transcode.cancel.j1.x":                    false,
		"$O.uploads.C.abc":                         true,
		"$O.uploads":                               false,
		"$KV.TRANSCODE_STATE.j1":                   false,
		"$JS.API.CONSUMER.CREATE.S.c.f":            true,
		"$JS.API.CONSUMER.CREATE.TRANSCODE_JOBS.c": false,
	} {
		if got := p.mayPublish(subject); got != want {
			t.Errorf("mayPublish(%q) = %v, want %v", subject, got, want)
		}
	}
	if !(*permissions)(nil).mayPublish("anything") || !(&permissions{}).mayPublish("anything") {
		t.Error("no permissions known or none set: want everything allowed")
	}
}
