package guard

import "testing"

// TestOverloadDefaults: the defaults a Config built in Go gets for the
// overload bounds are the ones the environment gets (envDefault tags).
func TestOverloadDefaults(t *testing.T) {
	fromEnv, err := DefaultConfig().parse()
	if err != nil {
		t.Fatal(err)
	}
	zero := DefaultConfig()
	zero.MaxCalls, zero.RetryAfter, zero.MaxTCPConns, zero.TCPIdle = 0, 0, 0, 0
	fromZero, err := zero.parse()
	if err != nil {
		t.Fatal(err)
	}
	if fromEnv.maxCalls != fromZero.maxCalls || fromEnv.retryAfter != fromZero.retryAfter ||
		fromEnv.maxTCP != fromZero.maxTCP || fromEnv.tcpIdle != fromZero.tcpIdle {
		t.Errorf("environment defaults %d %d %d %v, zero-value defaults %d %d %d %v",
			fromEnv.maxCalls, fromEnv.retryAfter, fromEnv.maxTCP, fromEnv.tcpIdle,
			fromZero.maxCalls, fromZero.retryAfter, fromZero.maxTCP, fromZero.tcpIdle)
	}
	bad := DefaultConfig()
	bad.MaxCalls, bad.RetryAfter, bad.MaxTCPConns, bad.TCPIdle = -1, 1500e6, -1, 10e6
	if _, err := bad.parse(); err == nil {
		t.Error("negative bounds, a fractional Retry-After and a 10 ms idle time were accepted")
	}
}
