package cancel

import (
	"context"
	"errors"
	"testing"
)

var errEngine = errors.New("engine cancelled")

// A call that ends before the cancel gives its own result.
func TestAbandonableFinishes(t *testing.T) {
	v, err := Abandonable(context.Background(), errEngine, func() (int, error) { return 7, nil }, nil)
	if v != 7 || err != nil {
		t.Fatalf("%d, %v", v, err)
	}
}

// A cancel returns at once, with an error that wraps the engine's
// sentinel, context.Canceled and the cause; what the abandoned work
// returns later is released.
func TestAbandonableCancelled(t *testing.T) {
	ctx, stop := context.WithCancelCause(context.Background())
	cause := errors.New("the user pressed Cancel")
	unblock, released := make(chan struct{}), make(chan int, 1)
	go func() { stop(cause) }()
	_, err := Abandonable(ctx, errEngine, func() (int, error) {
		<-unblock // cannot be interrupted
		return 42, nil
	}, func(v int) { released <- v })
	for _, want := range []error{errEngine, context.Canceled, cause} {
		if !errors.Is(err, want) {
			t.Errorf("%v does not wrap %v", err, want)
		}
	}
	if want := "engine cancelled: the user pressed Cancel"; err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	close(unblock)
	if v := <-released; v != 42 {
		t.Errorf("released %d", v)
	}
}
