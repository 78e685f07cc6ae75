package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// PermissionError is an action the NATS server refuses this connection's user: a publish to a
// subject (which, for JetStream, names the API call or the stream written) or a subscription.
type PermissionError struct {
	Op      string // "publish" or "subscribe"
	Subject string
	User    string // the NATS user, when known
	Err     error  // nats.ErrPermissionViolation, or nil when the client refused it up front
}

func (e *PermissionError) Error() string {
	s := fmt.Sprintf("permission denied: %s to %q", e.Op, e.Subject)
	if e.User != "" {
		s += fmt.Sprintf(" (NATS user %q)", e.User)
	}
	return s
}

func (e *PermissionError) Unwrap() error { return e.Err }

// The server's words for a refusal: Permissions Violation for Publish to "subject" (or
// Subscription to "subject", with `using queue "q"` after it).
var permViolationRe = regexp.MustCompile(`(?i)permissions violation for (publish|subscription) to "([^"]*)"`)

// AsPermissionError reads the server's refusal in err (an asynchronous error of the
// connection, nats.ErrPermissionViolation): nil when err is no such refusal.
func AsPermissionError(err error, user string) *PermissionError {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	pe := &PermissionError{Op: "publish", User: user, Err: err}
	if m := permViolationRe.FindStringSubmatch(err.Error()); m != nil {
		if strings.EqualFold(m[1], "subscription") {
			pe.Op = "subscribe"
		}
		pe.Subject = m[2]
	}
	return pe
}

// userInfoSubject answers a connection with its user and permissions (nats-server 2.10+).
const userInfoSubject = "$SYS.REQ.USER.INFO"

// permissions is what the server says this connection's user may publish. A nil
// *permissions allows everything: no permissions set, or a server that does not say.
type permissions struct {
	user         string
	allow, deny  []string
	restrictsPub bool
}

// askPermissions asks the server for the connection's user and publish permissions, waiting
// at most a second. Without an answer (an old server, a user not allowed to ask) it returns
// nil: actions are then tried, and a refusal is the server's.
func askPermissions(ctx context.Context, nc *nats.Conn) *permissions {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(ctx, userInfoSubject, nil)
	if err != nil {
		return nil
	}
	var resp struct {
		Data *struct {
			User        string `json:"user"`
			Permissions *struct {
				Publish *struct {
					Allow []string `json:"allow"`
					Deny  []string `json:"deny"`
				} `json:"publish"`
			} `json:"permissions"`
		} `json:"data"`
	}
	if json.Unmarshal(m.Data, &resp) != nil || resp.Data == nil {
		return nil
	}
	p := &permissions{user: resp.Data.User}
	if pp := resp.Data.Permissions; pp != nil && pp.Publish != nil {
		p.allow, p.deny, p.restrictsPub = pp.Publish.Allow, pp.Publish.Deny, true
	}
	return p
}

// mayPublish tells whether the user may publish to subject, as the server decides it: allowed
// when the allow list is empty or matches, and the deny list does not.
func (p *permissions) mayPublish(subject string) bool {
	if p == nil || !p.restrictsPub {
		return true
	}
	for _, d := range p.deny {
		if subjectMatches(subject, d) {
			return false
		}
	}
	if len(p.allow) == 0 {
		return true
	}
	for _, a := range p.allow {
		if subjectMatches(subject, a) {
			return true
		}
	}
	return false
}

func (p *permissions) userName() string {
	if p == nil {
		return ""
	}
	return p.user
}

// subjectMatches tells whether the literal subject matches filter, with NATS wildcards: *
// one token, > one or more at the end.
func subjectMatches(subject, filter string) bool {
	st, ft := strings.Split(subject, "."), strings.Split(filter, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(st) == len(ft)
}
