// Package tests holds callguard's end-to-end tests: they build the real
// binary and drive it over real sockets on loopback, as an operator, an
// admin or a carrier would.
package tests
