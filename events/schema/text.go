package schema

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxText bounds the free texts of an admin command (who gave it, why):
// they are stored in the caller's stream for ever and shown on one line
// of the audit.
const MaxText = 500

// TextError says which free text of a command breaks the rule of
// CheckCommandText, and how.
type TextError struct {
	// Field names the text as the caller of CheckCommandText named it
	// ("by", "why", "reason").
	Field string
	// Problem says what is wrong, without the field: "is required", "is
	// 612 characters, at most 500", "must be one line without control
	// characters". Edges that list errors per field show it as is.
	Problem string
}

func (e *TextError) Error() string { return e.Field + " " + e.Problem }

// CheckCommandText checks a free text of an admin command: present (not
// blank), valid UTF-8, one line without control characters, at most
// MaxText characters. The policy enforces it on every command; edges call
// it first to answer with the same words. It returns a *TextError.
func CheckCommandText(field, s string) error {
	problem := ""
	switch n := utf8.RuneCountInString(s); {
	case strings.TrimSpace(s) == "":
		problem = "is required"
	case !utf8.ValidString(s):
		problem = "is not valid UTF-8"
	case n > MaxText:
		problem = fmt.Sprintf("is %d characters, at most %d", n, MaxText)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		// The audit shows each text on one line; a newline could forge
		// a line of it.
		problem = "must be one line without control characters"
	default:
		return nil
	}
	return &TextError{Field: field, Problem: problem}
}
