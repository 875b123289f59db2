package call

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// Spawner starts call actors that share one node's dependencies and
// configuration, both checked once. It is safe for concurrent use.
type Spawner struct {
	d   *Deps
	cfg Config
}

// NewSpawner checks deps and cfg and fills their defaults.
func NewSpawner(deps Deps, cfg Config) (*Spawner, error) {
	if err := deps.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("call: config: %w", err)
	}
	deps.defaults()
	cfg.defaults()
	return &Spawner{d: &deps, cfg: cfg}, nil
}

// Counters are the counters of every call this Spawner started.
func (sp *Spawner) Counters() *Counters { return sp.d.Counters }

// Wait returns once every actor, outcome report and call stream writer
// has finished, or with ctx's error.
func (sp *Spawner) Wait(ctx context.Context) error { return sp.d.Tracker.Wait(ctx) }

// Spawn starts the actor of one call on system. The SIP side sends the
// call's facts to the returned PID (system.Root.Send) and receives the
// actor's orders through fx.
func (sp *Spawner) Spawn(system *actor.ActorSystem, setup Setup, fx Effects) (*actor.PID, error) {
	if setup.ID == "" {
		return nil, errors.New("call: setup has no call ID")
	}
	a := &callActor{d: sp.d, cfg: sp.cfg, setup: setup, fx: fx}
	a.log = sp.d.Logger.With("call", setup.ID, "caller", setup.Caller.Key)
	props := actor.PropsFromProducer(func() actor.Actor { return a })
	sp.d.Tracker.add()
	sp.d.Counters.Started.Add(1)
	sp.d.Counters.Active.Add(1)
	return system.Root.Spawn(props), nil
}
