package main

import (
	"strings"
	"testing"

	"github.com/callguard/callguard/projections/runner"
)

func TestWarnStale(t *testing.T) {
	var b strings.Builder
	warnStale(&b, runner.Freshness{Status: runner.ReadFailed, Reason: "lists stopped at 7 (CallEnded): bad payload; rebuild it once the cause is fixed"})
	warnStale(&b, runner.Freshness{Status: runner.ReadLagging})
	want := "callguard: warning: this answer comes from a projection that is failed: lists stopped at 7 (CallEnded): bad payload; rebuild it once the cause is fixed\n" +
		"callguard: warning: this answer comes from a projection that is lagging: see callguard projections\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
