package restore

import (
	"context"
	"errors"

	"pedos.dev/backup/internal/cancel"
)

// ErrCancelled is wrapped by the error of a call whose context was
// cancelled: Open, CheckHost, OpenSource and the data passes. The error
// also wraps ctx.Err() and the context's cause.
var ErrCancelled = errors.New("restore cancelled")

// cancelled is the error of a call that ctx stopped.
func cancelled(ctx context.Context) error { return cancel.New(ErrCancelled, ctx) }
