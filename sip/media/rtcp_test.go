package media

import "testing"

func TestIsRTCP(t *testing.T) {
	cases := []struct {
		name string
		p    []byte
		want bool
	}{
		{"receiver report", []byte{0x80, 201, 0, 1, 1, 2, 3, 4}, true},
		{"sender report", []byte{0x81, 200, 0, 6, 1, 2, 3, 4}, true},
		{"RTP PCMU", []byte{0x80, 0, 0, 1, 1, 2, 3, 4}, false},
		{"RTP with marker, pt 8", []byte{0x80, 0x88, 0, 1, 1, 2, 3, 4}, false},
		{"version 1", []byte{0x40, 201, 0, 1, 1, 2, 3, 4}, false},
		{"short", []byte{0x80, 201, 0}, false},
	}
	for _, tc := range cases {
		if got := IsRTCP(tc.p); got != tc.want {
			t.Errorf("%s: IsRTCP = %v, want %v", tc.name, got, tc.want)
		}
	}
}
