package sdp

import "testing"

// BenchmarkParseNegotiate is the guard's per-call SDP work on a challenged
// call: read the carrier's offer, choose the codec and write the answer.
func BenchmarkParseNegotiate(b *testing.B) {
	body := crlf(offerHuawei)
	caps := guardCaps()
	b.ReportAllocs()
	for b.Loop() {
		offer, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		ans, err := Negotiate(offer, caps)
		if err != nil {
			b.Fatal(err)
		}
		if len(ans.Body()) == 0 {
			b.Fatal("empty answer")
		}
	}
}
