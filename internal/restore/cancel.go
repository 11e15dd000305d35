package restore

import (
	"context"
	"errors"
)

// ErrCancelled is wrapped by the error of a call whose context was
// cancelled: Open, CheckHost, OpenSource and the data passes. The error
// also wraps ctx.Err() and the context's cause.
var ErrCancelled = errors.New("restore cancelled")

// cancelled is the error of a call that ctx stopped.
func cancelled(ctx context.Context) error {
	return &cancelError{ctxErr: ctx.Err(), cause: context.Cause(ctx)}
}

type cancelError struct{ ctxErr, cause error }

func (e *cancelError) Error() string { return ErrCancelled.Error() + ": " + e.cause.Error() }

func (e *cancelError) Unwrap() []error { return []error{ErrCancelled, e.ctxErr, e.cause} }

// abandonable runs f, which cannot be interrupted (a key derivation, a
// read from a stalled source), and returns its result, or an error at
// once when ctx is cancelled first: f then runs on to its end in the
// background, and release disposes of what it returns.
func abandonable[T any](ctx context.Context, f func() (T, error), release func(T)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, cancelled(ctx)
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
		go func() {
			if res := <-ch; res.err == nil {
				release(res.v)
			}
		}()
		return zero, cancelled(ctx)
	}
}
