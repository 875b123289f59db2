package validate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// ErrNoSession means a request body holds no session description.
var ErrNoSession = errors.New("no session description in body")

// maxParts bounds the parts read from a multipart body: SIP-I sends two
// (SDP and ISUP), RFC 5621 examples a few.
const maxParts = 8

// SessionBody returns the SDP of a request: the body itself when it is
// application/sdp, or the application/sdp part of a multipart/mixed body
// (RFC 5621; SIP-I/SIP-T trunks send SDP and the ISUP message together,
// RFC 3204). A request without a body returns nil and no error (an INVITE
// without an offer, RFC 3261 §13.2.1). Errors wrap ErrNoSession.
func SessionBody(req *sip.Request) ([]byte, error) {
	body := req.Body()
	if len(body) == 0 {
		return nil, nil
	}
	ct := req.ContentType()
	if ct == nil {
		return nil, fmt.Errorf("validate: body without Content-Type: %w", ErrNoSession)
	}
	mt, params, err := mime.ParseMediaType(string(*ct))
	if err != nil {
		return nil, fmt.Errorf("validate: Content-Type %q: %v: %w", string(*ct), err, ErrNoSession)
	}
	switch mt {
	case "application/sdp":
		return body, nil
	case "multipart/mixed":
		return sessionPart(body, params)
	}
	return nil, fmt.Errorf("validate: body is %s: %w", mt, ErrNoSession)
}

// sessionPart finds the application/sdp part of a multipart/mixed body.
// RFC 5621 §9 and RFC 3261 §20.11: a part we do not understand is fine
// unless its Content-Disposition says handling=required.
func sessionPart(body []byte, params map[string]string) ([]byte, error) {
	boundary := params["boundary"]
	if boundary == "" {
		return nil, fmt.Errorf("validate: multipart body without boundary: %w", ErrNoSession)
	}
	r := multipart.NewReader(bytes.NewReader(body), boundary)
	var sdp []byte
	for i := 0; ; i++ {
		if i >= maxParts {
			return nil, fmt.Errorf("validate: multipart body has more than %d parts: %w", maxParts, ErrNoSession)
		}
		part, err := r.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("validate: multipart body: %v: %w", err, ErrNoSession)
		}
		pt, _, err := mime.ParseMediaType(headerOr(part.Header, "Content-Type", "text/plain"))
		if err != nil {
			return nil, fmt.Errorf("validate: multipart part %d: %v: %w", i+1, err, ErrNoSession)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			return nil, fmt.Errorf("validate: multipart part %d: %v: %w", i+1, err, ErrNoSession)
		}
		if pt == "application/sdp" && sdp == nil {
			sdp = data
			continue
		}
		if required(part.Header.Get("Content-Disposition")) {
			return nil, fmt.Errorf("validate: multipart part %d (%s) is required and not understood: %w", i+1, pt, ErrNoSession)
		}
	}
	if sdp == nil {
		return nil, fmt.Errorf("validate: multipart body has no application/sdp part: %w", ErrNoSession)
	}
	return sdp, nil
}

func headerOr(h textproto.MIMEHeader, name, def string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	return def
}

// required reports whether a Content-Disposition has handling=required.
// RFC 3261 §20.11: handling defaults to required, but RFC 3204 §3 (ISUP
// and QSIG bodies) has them sent with handling=optional, and a part with
// no Content-Disposition at all is treated here as optional: rejecting a
// SIP-I call for its ISUP copy would drop real calls.
func required(disposition string) bool {
	if disposition == "" {
		return false
	}
	_, params, err := mime.ParseMediaType(disposition)
	if err != nil {
		return false
	}
	return strings.EqualFold(params["handling"], "required")
}
