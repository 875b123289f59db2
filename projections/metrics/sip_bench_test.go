package metrics

import "testing"

// BenchmarkSIPMessage: counting the messages of one rejected call
// (INVITE in, 603 out, ACK in).
func BenchmarkSIPMessage(b *testing.B) {
	m := New()
	b.ReportAllocs()
	for b.Loop() {
		m.RequestIn("INVITE")
		m.ResponseOut("INVITE", 603)
		m.RequestIn("ACK")
	}
}
