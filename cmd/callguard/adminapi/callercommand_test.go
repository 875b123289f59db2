package adminapi

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
)

func TestCallerCommand(t *testing.T) {
	n := testNormalizer(t)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	six, zero := 6, 0
	tests := []struct {
		name    string
		in      CommandInput
		key     string
		bad     []string // fields refused, in order
		level   int
		until   time.Time
		wantWhy string
	}{
		{name: "whitelist", in: CommandInput{Verb: caller.VerbWhitelist, Number: "8 916 123-45-67", By: "anna", Reason: " client ", ID: "x"},
			key: "+79161234567", wantWhy: "client"},
		{name: "whitelist until", in: CommandInput{Verb: caller.VerbWhitelist, Number: "+79161234567", By: "anna", Reason: "r", Until: "2026-12-31T00:00:00Z", ID: "x"},
			key: "+79161234567", until: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), wantWhy: "r"},
		{name: "block", in: CommandInput{Verb: caller.VerbBlock, Number: "+79161234567", By: "anna", Reason: "fraud", Level: &six, ID: "x"},
			key: "+79161234567", level: 6, wantWhy: "fraud"},
		{name: "block without level", in: CommandInput{Verb: caller.VerbBlock, Number: "+79161234567", By: "anna", Reason: "fraud", ID: "x"}, bad: []string{"level"}},
		{name: "block level 0", in: CommandInput{Verb: caller.VerbBlock, Number: "+79161234567", By: "anna", Reason: "fraud", Level: &zero, ID: "x"}, bad: []string{"level"}},
		{name: "past until", in: CommandInput{Verb: caller.VerbWhitelist, Number: "+79161234567", By: "anna", Reason: "r", Until: "2026-01-01T00:00:00Z", ID: "x"}, bad: []string{"until"}},
		{name: "all wrong", in: CommandInput{Verb: caller.VerbUnblock, Number: "not a number"}, bad: []string{"number", "by", "reason", "id"}},
		{name: "bad verb", in: CommandInput{Verb: "delete", Number: "+79161234567", By: "a", Reason: "r", ID: "x"}, bad: []string{"verb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, cmd, err := CallerCommand(n, now, tt.in)
			if tt.bad != nil {
				var ce *CommandError
				if !errors.As(err, &ce) {
					t.Fatalf("err = %v, want a CommandError", err)
				}
				var fields []string
				for _, fe := range ce.Errors {
					if len(fields) == 0 || fields[len(fields)-1] != fe.Field {
						fields = append(fields, fe.Field)
					}
				}
				if strings.Join(fields, ",") != strings.Join(tt.bad, ",") {
					t.Fatalf("fields %v, want %v (%v)", fields, tt.bad, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if key != tt.key || cmd.Verb != tt.in.Verb || cmd.Command.Level != tt.level || !cmd.Command.Until.Equal(tt.until) ||
				cmd.Command.By != tt.in.By || cmd.Command.Why != tt.wantWhy || cmd.Command.ID != tt.in.ID {
				t.Fatalf("got %s %+v", key, cmd)
			}
		})
	}
}
