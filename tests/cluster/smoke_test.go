package cluster

import (
	"testing"
	"time"
)

func TestSmokeOneNode(t *testing.T) {
	s := newScenario(t, options{nodes: 1, single: true})
	load, wait := s.c.startLoad(s.cs, 50, 5*time.Second)
	wait()
	s.figures("smoke", load)
	s.c.checkLog(s.ctx, load.Calls(), s.acks, nil)
}

func TestSmokePG(t *testing.T) { postgresRestart(t, options{nodes: 1, single: true}) }
