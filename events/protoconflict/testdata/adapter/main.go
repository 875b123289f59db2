// Command adapter links protoactor-go's cluster and callguard's EventStoreDB
// adapter, without importing protoconflict itself: the adapter's own import
// of it must keep the binary from panicking at init.
package main

import (
	"fmt"

	_ "github.com/asynkron/protoactor-go/cluster"

	_ "github.com/callguard/callguard/events/esdb"
)

func main() {
	fmt.Println("adapter: protoactor cluster and the EventStoreDB store initialised")
}
