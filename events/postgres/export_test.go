package postgres

import "context"

// WithBeforeCommit runs f in each append's transaction just before COMMIT.
func WithBeforeCommit(f func(ctx context.Context, stream string)) Option {
	return func(o *options) { o.beforeCommit = f }
}

// WithNotifyInTx turns the NOTIFY inside append transactions on or off.
func WithNotifyInTx(on bool) Option {
	return func(o *options) { o.notifyInTx = on }
}
