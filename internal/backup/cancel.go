package backup

import (
	"context"
	"errors"

	"pedos.dev/backup/internal/cancel"
)

// ErrCancelled is wrapped by the error of NewPlan, Run and Verify when
// their context was cancelled. The error also wraps ctx.Err() and the
// context's cause.
var ErrCancelled = errors.New("backup cancelled")

// cancelled is the error of a call that ctx stopped.
func cancelled(ctx context.Context) error { return cancel.New(ErrCancelled, ctx) }
