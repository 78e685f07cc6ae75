package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/transcoder/transcoder/worker"
)

// session is a client command's connection to NATS. The server refuses an action the user
// lacks permission for with an asynchronous error, and a JetStream request it refused is never
// answered: the session's context ends at that error, its cause the *worker.PermissionError,
// so the command stops at once and says which permission is missing.
type session struct {
	nc     *nats.Conn
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// open connects with the flags; the session ends with ctx.
func (f *clientFlags) open(ctx context.Context) (*session, error) {
	s := &session{}
	s.ctx, s.cancel = context.WithCancelCause(ctx)
	user := urlUser(f.url)
	nc, err := connectNATS(f.url, "transcoder client", f.auth,
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if pe := worker.AsPermissionError(err, user); pe != nil {
				s.cancel(pe)
			}
		}))
	if errors.Is(err, nats.ErrNoServers) {
		err = fmt.Errorf("%w (is a worker running? start one with `transcoder worker`)", err)
	}
	if err != nil {
		s.cancel(nil)
		return nil, err
	}
	s.nc = nc
	return s, nil
}

// done closes the connection and returns err, or the server's refusal that ended the
// session, which is why err happened.
func (s *session) done(err error) error {
	if err == nil {
		err = s.nc.Flush()
	}
	s.nc.Close()
	var pe *worker.PermissionError
	if cause := context.Cause(s.ctx); errors.As(cause, &pe) && !errors.As(err, &pe) {
		err = pe
	}
	s.cancel(nil)
	return err
}

// withClient connects, runs fn with a client and the session's context, flushes and closes.
func (f *clientFlags) withClient(ctx context.Context, fn func(context.Context, *worker.Client) error) error {
	s, err := f.open(ctx)
	if err != nil {
		return err
	}
	cl, err := worker.NewClient(s.ctx, s.nc)
	if err == nil {
		err = fn(s.ctx, cl)
	}
	return s.done(err)
}

// urlUser is the user named in the first of the comma-separated URLs that names one.
func urlUser(urls string) string {
	for _, u := range strings.Split(urls, ",") {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil && p.User != nil {
			return p.User.Username()
		}
	}
	return ""
}
