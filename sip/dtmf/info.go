package dtmf

import (
	"errors"
	"fmt"
	"mime"
	"strconv"
	"strings"
	"time"
)

// Errors of ParseInfo.
var (
	// ErrContentType: the INFO carries something other than DTMF; a SIP
	// stack answers 415 Unsupported Media Type (RFC 3261 §21.4.13).
	ErrContentType = errors.New("not a DTMF content type")
	// ErrInfo: a DTMF content type with a body that is not one key.
	ErrInfo = errors.New("invalid DTMF INFO body")
)

// Content types of DTMF in SIP INFO. Neither has an RFC: dtmf-relay is
// Cisco's and is what most gateways send, dtmf is a bare key.
const (
	ContentTypeRelay = "application/dtmf-relay"
	ContentTypeDTMF  = "application/dtmf"
)

// maxInfoBody bounds the body ParseInfo looks at: a real one is under 30
// bytes, and anything much longer is not DTMF.
const maxInfoBody = 256

// InfoKey is the key of one SIP INFO, and its duration if the body gave one.
type InfoKey struct {
	Key      rune
	Duration time.Duration
}

// ParseInfo decodes the body of a SIP INFO request carrying one key:
//
//	application/dtmf-relay   "Signal=5\r\nDuration=160\r\n"  (Duration in ms, optional)
//	application/dtmf         "5"
//
// It is tolerant where senders differ — parameters of the content type,
// letter case, blanks around keys, values and '=', LF or CRLF line ends,
// empty lines, 10 and 11 for '*' and '#' (the RFC 4733 event codes, which
// some phones send) — and strict about everything else: an unknown field,
// a repeated field, a missing Signal, a value that is not one key, or a
// Duration that is not a number of milliseconds is an error wrapping ErrInfo.
// A content type other than the two is an error wrapping ErrContentType.
func ParseInfo(contentType string, body []byte) (InfoKey, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return InfoKey{}, fmt.Errorf("%w: content type %q: %v", ErrContentType, contentType, err)
	}
	if len(body) > maxInfoBody {
		return InfoKey{}, fmt.Errorf("%w: %d-byte body", ErrInfo, len(body))
	}
	switch mt {
	case ContentTypeRelay:
		return parseRelay(string(body))
	case ContentTypeDTMF:
		key, err := parseSignal(strings.TrimSpace(string(body)))
		return InfoKey{Key: key}, err
	}
	return InfoKey{}, fmt.Errorf("%w: %q", ErrContentType, mt)
}

func parseRelay(body string) (InfoKey, error) {
	var (
		out          InfoKey
		haveSignal   bool
		haveDuration bool
	)
	for line := range strings.SplitSeq(body, "\n") {
		line = strings.TrimSpace(line) // also drops the CR of CRLF
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return InfoKey{}, fmt.Errorf("%w: line %q is not name=value", ErrInfo, line)
		}
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		switch name {
		case "signal":
			if haveSignal {
				return InfoKey{}, fmt.Errorf("%w: two Signal fields", ErrInfo)
			}
			key, err := parseSignal(value)
			if err != nil {
				return InfoKey{}, err
			}
			out.Key, haveSignal = key, true
		case "duration":
			if haveDuration {
				return InfoKey{}, fmt.Errorf("%w: two Duration fields", ErrInfo)
			}
			ms, err := strconv.ParseUint(value, 10, 32)
			if err != nil || ms > 600_000 {
				return InfoKey{}, fmt.Errorf("%w: Duration %q is not a number of milliseconds", ErrInfo, value)
			}
			out.Duration, haveDuration = time.Duration(ms)*time.Millisecond, true
		default:
			return InfoKey{}, fmt.Errorf("%w: unknown field %q", ErrInfo, name)
		}
	}
	if !haveSignal {
		return InfoKey{}, fmt.Errorf("%w: no Signal field", ErrInfo)
	}
	return out, nil
}

// parseSignal reads one key: a character of the keypad, or an RFC 4733
// event code 10–15 for '*', '#', A–D.
func parseSignal(v string) (rune, error) {
	if len(v) == 1 {
		if code, ok := EventCode(rune(v[0])); ok {
			key, _ := EventKey(code)
			return key, nil
		}
	}
	if n, err := strconv.ParseUint(v, 10, 8); err == nil && n >= 10 && len(v) == 2 {
		if key, ok := EventKey(uint8(n)); ok {
			return key, nil
		}
	}
	return 0, fmt.Errorf("%w: signal %q is not a DTMF key", ErrInfo, v)
}
