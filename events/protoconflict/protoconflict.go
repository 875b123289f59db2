// Package protoconflict lets one binary link both protoactor-go's cluster
// and EventStore-Client-Go/v4.
//
// Both register a protobuf file named "gossip.proto" in the global registry
// of google.golang.org/protobuf, which panics on a duplicate file name unless
// GOLANG_PROTOBUF_REGISTRATION_CONFLICT says otherwise. That variable is read
// when the second registration happens, inside the packages' init functions,
// so it must be set before they run. Since Go 1.21 packages are initialised
// in import-path order among those whose imports are ready; this package
// imports only "os", and its path (github.com/callguard/...) sorts before
// google.golang.org/protobuf, which both conflicting packages need first, so
// its init runs before either registers. The test in this package builds and
// runs a binary that links both to keep that true.
//
// The two files describe different messages in different Go packages; only
// the file names collide, so nothing resolves a message by that file name.
package protoconflict

import "os"

const env = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"

func init() {
	// An operator's explicit choice wins.
	if _, set := os.LookupEnv(env); !set {
		_ = os.Setenv(env, "ignore")
	}
}
