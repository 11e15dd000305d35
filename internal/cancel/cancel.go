// Package cancel is what the engines share about being cancelled: the
// error of a call whose context ended, and running work that cannot be
// interrupted without making the caller wait for it.
package cancel

import "context"

// Error is the error of an engine call that its context stopped. It wraps
// the engine's own sentinel (so callers test errors.Is(err,
// backup.ErrCancelled)), ctx.Err() and the context's cause.
type Error struct{ sentinel, ctxErr, cause error }

// New is the error of a call of the engine whose sentinel is given, which
// ctx stopped.
func New(sentinel error, ctx context.Context) error {
	return &Error{sentinel: sentinel, ctxErr: ctx.Err(), cause: context.Cause(ctx)}
}

func (e *Error) Error() string { return e.sentinel.Error() + ": " + e.cause.Error() }

func (e *Error) Unwrap() []error { return []error{e.sentinel, e.ctxErr, e.cause} }

// Abandonable runs f, which cannot be interrupted at once (a key
// derivation, a read from a stalled source, measuring a large home), and
// returns its result, or New(sentinel, ctx) as soon as ctx ends first: f
// then runs on to its end in the background (it should notice the cancel
// too), and release, if not nil, disposes of what it returns.
func Abandonable[T any](ctx context.Context, sentinel error, f func() (T, error), release func(T)) (T, error) {
	var zero T
	if ctx.Err() != nil {
		return zero, New(sentinel, ctx)
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
		if release != nil {
			go func() {
				if res := <-ch; res.err == nil {
					release(res.v)
				}
			}()
		}
		return zero, New(sentinel, ctx)
	}
}
