package backup

import (
	"context"
	"errors"
)

// ErrCancelled is wrapped by the error of NewPlan, Run and Verify when
// their context was cancelled. The error also wraps ctx.Err() and the
// context's cause.
var ErrCancelled = errors.New("backup cancelled")

// cancelled is the error of a call that ctx stopped.
func cancelled(ctx context.Context) error {
	return &cancelError{ctxErr: ctx.Err(), cause: context.Cause(ctx)}
}

type cancelError struct{ ctxErr, cause error }

func (e *cancelError) Error() string { return ErrCancelled.Error() + ": " + e.cause.Error() }

func (e *cancelError) Unwrap() []error { return []error{ErrCancelled, e.ctxErr, e.cause} }

// abandonable runs f and returns its result, or an error at once when ctx
// is cancelled first (f should notice the cancel too, but may be inside
// a step it cannot leave, such as measuring a large home): f then runs on
// to its end in the background, and its result is dropped.
func abandonable[T any](ctx context.Context, f func() (T, error)) (T, error) {
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
		return zero, cancelled(ctx)
	}
}
