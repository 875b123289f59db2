package console

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"
)

// Cookies the console sets, all on Path /console/, HttpOnly and
// SameSite=Strict.
const (
	// sessionCookie holds the session ID: 256 random bits.
	sessionCookie = "callguard_session"
	// signinCookie holds the sign-in form's CSRF token before there is a
	// session (a double-submit token: a forged sign-in cannot read it).
	signinCookie = "callguard_signin"
	// langCookie holds the chosen language.
	langCookie = "lang"
)

// maxSessions bounds the sessions kept; only a signed-in user makes one,
// so this is far above any real use and only stops a runaway script.
const maxSessions = 10000

// session is one signed-in browser. The role is not kept: it is re-read
// from Users on every request, so a role change or a disabled user acts
// at once.
type session struct {
	id      string
	user    string
	csrf    string
	created time.Time
	seen    time.Time
	// flash is shown once, by the next page rendered.
	flash      string
	flashError bool
}

// sessions keeps the sessions in memory: a restart signs everybody out,
// which is the safe side.
type sessions struct {
	idle, maxAge time.Duration
	clock        func() time.Time
	random       io.Reader

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(idle, maxAge time.Duration, clock func() time.Time, random io.Reader) *sessions {
	return &sessions{idle: idle, maxAge: maxAge, clock: clock, random: random, byID: make(map[string]*session)}
}

// token draws 32 random bytes, base64url.
func token(random io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("draw a token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// create starts a session for user.
func (ss *sessions) create(user string) (session, error) {
	id, err := token(ss.random)
	if err != nil {
		return session{}, err
	}
	csrf, err := token(ss.random)
	if err != nil {
		return session{}, err
	}
	now := ss.clock()
	s := &session{id: id, user: user, csrf: csrf, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.byID) >= maxSessions {
		ss.sweepLocked(now)
	}
	if len(ss.byID) >= maxSessions {
		return session{}, fmt.Errorf("%d sessions open", len(ss.byID))
	}
	ss.byID[id] = s
	return *s, nil
}

// get returns the live session of id and marks it used; an expired one
// is dropped.
func (ss *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	now := ss.clock()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok {
		return session{}, false
	}
	if ss.expired(s, now) {
		delete(ss.byID, id)
		return session{}, false
	}
	s.seen = now
	return *s, true
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.seen) >= ss.idle || now.Sub(s.created) >= ss.maxAge
}

func (ss *sessions) sweepLocked(now time.Time) {
	for id, s := range ss.byID {
		if ss.expired(s, now) {
			delete(ss.byID, id)
		}
	}
}

// destroy ends a session (sign-out, or its user is gone).
func (ss *sessions) destroy(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// destroyUser ends every session of a user.
func (ss *sessions) destroyUser(user string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, s := range ss.byID {
		if s.user == user {
			delete(ss.byID, id)
		}
	}
}

// setFlash keeps a message for the session's next page.
func (ss *sessions) setFlash(id, msg string, isError bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s, ok := ss.byID[id]; ok {
		s.flash, s.flashError = msg, isError
	}
}

// takeFlash returns and clears the session's flash.
func (ss *sessions) takeFlash(id string) (string, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok {
		return "", false
	}
	msg, isErr := s.flash, s.flashError
	s.flash, s.flashError = "", false
	return msg, isErr
}

// tokensEqual compares two tokens in constant time.
func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
