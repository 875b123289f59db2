package node

import (
	"slices"
	"testing"
)

// memberDiff is what keeps a node unready while its member list and the
// registrations in etcd differ (Watch.Ready).
func TestMemberDiff(t *testing.T) {
	for _, tc := range []struct {
		name                string
		registered, seen    []string
		wantMissing, wantEx []string
	}{
		{"agree", []string{"c@a", "c@b", "c@c"}, []string{"c@c", "c@a", "c@b"}, nil, nil},
		{"a member missed in the watch gap", []string{"c@a", "c@b", "c@c"}, []string{"c@a", "c@b"}, []string{"c@c"}, nil},
		{"not yet registered itself", []string{"c@b"}, []string{"c@a", "c@b"}, nil, []string{"c@a"}},
		{"both ways, sorted", []string{"c@z", "c@a", "c@m"}, []string{"c@y", "c@a", "c@b"}, []string{"c@m", "c@z"}, []string{"c@b", "c@y"}},
		{"nothing known yet", []string{"c@a"}, nil, []string{"c@a"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			missing, extra := memberDiff(tc.registered, tc.seen)
			if !slices.Equal(missing, tc.wantMissing) || !slices.Equal(extra, tc.wantEx) {
				t.Errorf("memberDiff(%v, %v) = missing %v, extra %v; want %v, %v", tc.registered, tc.seen, missing, extra, tc.wantMissing, tc.wantEx)
			}
		})
	}
}
