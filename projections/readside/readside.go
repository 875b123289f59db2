// Package readside assembles a node's read side: the projection runner
// with every projection (lists, profiles, reports) over one projections
// database, and the queries over them. A node opens it once, starts it
// beside the caller grains; cmd hands its parts to the admin API.
package readside

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/profiles"
	"github.com/callguard/callguard/projections/reports"
	"github.com/callguard/callguard/projections/runner"
)

// ErrConfig is the sentinel of every Config.Validate error.
var ErrConfig = errors.New("invalid read side config")

// Config configures Open.
type Config struct {
	// Dir is the node's data directory: the projections' files go in its
	// subdirectory runner.DirName, beside the embedded store's events.db.
	// A node on EventStoreDB keeps its projections there too: they are
	// the node's own, and rebuildable.
	Dir string
	// Store is the event store to project (required).
	Store events.Store
	// Reports are the report settings; Reports.Location is also the zone
	// of the profiles' "today".
	Reports reports.Config
	// Clock judges expiries, today and lag (nil: time.Now).
	Clock func() time.Time
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Runner tunes the runner; its Clock and Logger are set from above.
	Runner runner.Options
}

// Validate reports everything wrong with c.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, fmt.Errorf("%w: no data directory for the projections", ErrConfig))
	}
	if c.Store == nil {
		errs = append(errs, fmt.Errorf("%w: no event store", ErrConfig))
	}
	if err := c.Reports.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
	}
	return errors.Join(errs...)
}

// ReadSide is the running read side.
type ReadSide struct {
	Runner   *runner.Runner
	Lists    *lists.Lists
	Profiles *profiles.Profiles
	Reports  *reports.Reports
}

// Open opens the projections' databases in cfg.Dir with every projection;
// call Start to run them.
func Open(ctx context.Context, cfg Config) (*ReadSide, error) {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loc := cfg.Reports.Location
	if loc == nil {
		loc = time.UTC
		cfg.Reports.Location = loc
	}
	opts := cfg.Runner
	opts.Clock, opts.Logger = cfg.Clock, cfg.Logger
	r, err := runner.Open(ctx, filepath.Join(cfg.Dir, runner.DirName), cfg.Store, Projections(loc), opts)
	if err != nil {
		return nil, fmt.Errorf("read side: %w", err)
	}
	rep, err := reports.New(r, cfg.Reports, cfg.Clock)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("read side: %w", err), r.Close())
	}
	rs := &ReadSide{
		Runner:   r,
		Lists:    lists.New(r, cfg.Clock),
		Profiles: profiles.New(r, loc, cfg.Clock),
		Reports:  rep,
	}
	return rs, nil
}

// Projections returns every projection of the read side, with days in
// loc: the list a runner of this build runs.
func Projections(loc *time.Location) []runner.Projection {
	return []runner.Projection{
		lists.NewProjection(),
		profiles.NewProjection(loc),
		reports.NewProjection(loc),
	}
}

// Start runs the projections until ctx ends or Close.
func (rs *ReadSide) Start(ctx context.Context) error { return rs.Runner.Start(ctx) }

// Close stops the projections and closes the database.
func (rs *ReadSide) Close() error { return rs.Runner.Close() }
