// Command bothproto links protoactor-go's cluster and EventStore-Client-Go/v4
// into one binary. Both register a protobuf file named "gossip.proto"; the
// test in package protoconflict builds and runs this program to prove that
// importing protoconflict keeps such a binary from panicking at init.
package main

import (
	"fmt"

	_ "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	_ "github.com/asynkron/protoactor-go/cluster"

	_ "github.com/callguard/callguard/events/protoconflict"
)

func main() {
	fmt.Println("bothproto: protoactor cluster and EventStoreDB client initialised")
}
