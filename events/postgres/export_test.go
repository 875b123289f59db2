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

// Setting returns a server setting as one of the Store's sessions sees it.
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT current_setting($1)`, name).Scan(&v)
	return v, err
}
