// Command crm is a stand-in for the bank's CRM in load runs
// (tests/sipp/README.md, "With the CRM lookup"): it answers callguard's
// GET ?number=+7... as actors/crm/openapi.json describes, VIP for numbers
// ending in 0, no customer (404) for the others, after -delay.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "host:port to serve on")
	delay := flag.Duration("delay", 0, "wait this long before each answer")
	flag.Parse()
	var asked atomic.Int64
	go func() {
		// How many lookups arrived, so a run can tell the guard asked.
		for last := int64(0); ; time.Sleep(5 * time.Second) {
			if n := asked.Load(); n != last {
				log.Printf("%d lookups answered", n)
				last = n
			}
		}
	}()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		defer asked.Add(1)
		if *delay > 0 {
			time.Sleep(*delay)
		}
		if !strings.HasSuffix(r.URL.Query().Get("number"), "0") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"vip": true, "name": "Load Test", "segment": "private"}`)
	})
	log.Printf("fake CRM on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
