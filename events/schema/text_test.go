package schema_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/callguard/callguard/events/schema"
)

func TestCheckCommandText(t *testing.T) {
	tests := []struct {
		name, in, problem string
	}{
		{"plain", "repeated prank calls", ""},
		{"Cyrillic at the limit", strings.Repeat("я", schema.MaxText), ""},
		{"empty", "", "is required"},
		{"blank", " \t ", "is required"},
		{"too long", strings.Repeat("я", schema.MaxText+1), "is 501 characters, at most 500"},
		{"newline", "spam\nX-Forged: line", "must be one line without control characters"},
		{"carriage return", "spam\r", "must be one line without control characters"},
		{"bell", "spam\a", "must be one line without control characters"},
		{"C1 control", "spam\u0085", "must be one line without control characters"},
		{"not UTF-8", "spam\xff", "is not valid UTF-8"},
	}
	for _, tt := range tests {
		err := schema.CheckCommandText("why", tt.in)
		if tt.problem == "" {
			if err != nil {
				t.Errorf("%s: %v, want nil", tt.name, err)
			}
			continue
		}
		var te *schema.TextError
		if !errors.As(err, &te) {
			t.Errorf("%s: %v, want a *TextError", tt.name, err)
			continue
		}
		if te.Field != "why" || te.Problem != tt.problem || err.Error() != "why "+tt.problem {
			t.Errorf("%s: %+v (%q), want why %q", tt.name, te, err, tt.problem)
		}
	}
}
