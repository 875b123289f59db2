package call

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// Spawner starts call actors on one node's actor system; they share its
// dependencies and configuration, both checked once. cmd builds it and
// hands it to the SIP edge, which then needs neither the actor system nor
// PIDs. It is safe for concurrent use.
type Spawner struct {
	system *actor.ActorSystem
	d      *Deps
	cfg    Config
}

// NewSpawner checks deps and cfg and fills their defaults. Its calls run
// on system, the node's local actor system.
func NewSpawner(system *actor.ActorSystem, deps Deps, cfg Config) (*Spawner, error) {
	if system == nil {
		return nil, errors.New("call: no actor system")
	}
	if err := deps.validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("call: config: %w", err)
	}
	deps.defaults()
	cfg.defaults()
	return &Spawner{system: system, d: &deps, cfg: cfg}, nil
}

// Counters are the counters of every call this Spawner started.
func (sp *Spawner) Counters() *Counters { return sp.d.Counters }

// Saturated reports whether the node is too busy to decide one more call
// now (its Callers say so; see caller.Client.Saturated). A Callers that
// cannot tell is never saturated.
func (sp *Spawner) Saturated() bool {
	s, ok := sp.d.Callers.(interface{ Saturated() bool })
	return ok && s.Saturated()
}

// Wait returns once every actor, outcome report and call stream writer
// has finished, or with ctx's error.
func (sp *Spawner) Wait(ctx context.Context) error { return sp.d.Tracker.Wait(ctx) }

// Start starts the actor of one call. The SIP side tells the returned Call
// the call's facts and receives the actor's orders through fx.
func (sp *Spawner) Start(setup Setup, fx Effects) (*Call, error) {
	if setup.ID == "" {
		return nil, errors.New("call: setup has no call ID")
	}
	a := &callActor{d: sp.d, cfg: sp.cfg, setup: setup, fx: fx}
	a.log = Logger(sp.d.Logger, "call", setup.ID, "caller", setup.Caller.Key)
	props := actor.PropsFromProducer(func() actor.Actor { return a })
	sp.d.Tracker.add()
	sp.d.Counters.Started.Add(1)
	sp.d.Counters.Active.Add(1)
	return &Call{root: sp.system.Root, pid: sp.system.Root.Spawn(props)}, nil
}

// Call is a started call actor, as the SIP side sees it.
type Call struct {
	root *actor.RootContext
	pid  *actor.PID
}

// Tell sends the actor one of the call's facts (Answered, EarlyMedia,
// Digit, PBXAnswered, Ended). It never blocks; a fact told after the actor
// stopped is dropped, as the call is over.
func (c *Call) Tell(msg any) { c.root.Send(c.pid, msg) }
