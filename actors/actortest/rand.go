package actortest

// FixedRand is a random source that yields its decimal digits, as byte
// values, over and over: FixedRand("47") reads as 4, 7, 4, 7, ... so a
// two-digit challenge code drawn from it (call.DrawCode) is "47". Every
// Read starts the pattern again, so every code drawn is the same and
// concurrent calls may share one source. The digits must be '0'-'9';
// an empty FixedRand reads zeros.
type FixedRand string

// Read fills p with the digits.
func (r FixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 0
		if len(r) > 0 {
			p[i] = r[i%len(r)] - '0'
		}
	}
	return len(p), nil
}
