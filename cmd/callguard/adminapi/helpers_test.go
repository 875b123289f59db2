package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/caller"
	"github.com/callguard/callguard/events/phone"
)

const testToken = "test-token-0123456789abcdef"

// testNow is the fixed clock of the unit tests.
var testNow = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// fakeCallers stands in for the caller grains in the unit tests: it
// records the commands it is given and answers like the grain does,
// including repeated for a command ID seen before on the same key.
type fakeCallers struct {
	mu        sync.Mutex
	commands  []sentCommand
	statusFor []string
	seen      map[string]bool
	rev       uint64
	// cmdErr and statusErr, when set, are returned instead.
	cmdErr    error
	statusErr error
	status    caller.Status
}

type sentCommand struct {
	Key string
	Cmd caller.Command
}

var verbEvent = map[string]string{
	caller.VerbWhitelist: "Whitelisted", caller.VerbUnwhitelist: "Unwhitelisted",
	caller.VerbBlock: "BlockApplied", caller.VerbUnblock: "BlockLifted",
}

func (f *fakeCallers) Command(_ context.Context, key string, cmd caller.Command) (caller.Applied, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands = append(f.commands, sentCommand{key, cmd})
	if f.cmdErr != nil {
		return caller.Applied{}, f.cmdErr
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	id := key + "/" + cmd.Command.ID
	if f.seen[id] {
		return caller.Applied{Revision: f.rev, Repeated: true}, nil
	}
	f.seen[id] = true
	f.rev++
	return caller.Applied{Events: []string{verbEvent[cmd.Verb]}, Revision: f.rev}, nil
}

func (f *fakeCallers) Status(_ context.Context, key string) (caller.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusFor = append(f.statusFor, key)
	if f.statusErr != nil {
		return caller.Status{}, f.statusErr
	}
	st := f.status
	st.Key = key
	return st, nil
}

func (f *fakeCallers) sent() []sentCommand {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentCommand(nil), f.commands...)
}

func (f *fakeCallers) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.commands) + len(f.statusFor)
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testNormalizer(t *testing.T) *phone.Normalizer {
	t.Helper()
	n, err := phone.New("RU")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// newTestServer builds a server around f and h. Its log is checked, when
// the test ends, for the token: it must never be written.
func newTestServer(t *testing.T, f Callers, h History) *Server {
	t.Helper()
	logs := &syncBuffer{}
	var ids atomic.Int64
	s, err := New(Config{Token: testToken}, Deps{
		Callers: f, History: h, Normalizer: testNormalizer(t),
		Clock:  func() time.Time { return testNow },
		NewID:  func() string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", ids.Add(1)) },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if out := logs.String(); strings.Contains(out, testToken) || strings.Contains(out, "Bearer") {
			t.Errorf("the log holds the token or the Authorization header:\n%s", out)
		}
	})
	return s
}

// req is one request of a table test.
type req struct {
	method, path, body string
	header             map[string]string
	// noAuth sends no Authorization header.
	noAuth bool
}

func (r req) String() string { return r.method + " " + r.path }

func serve(t *testing.T, s *Server, r req) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	if !r.noAuth {
		hr.Header.Set("Authorization", "Bearer "+testToken)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, hr)
	return rec
}

// problemOfRecorder decodes a problem answer and checks its envelope.
func problemOfRecorder(t *testing.T, rec *httptest.ResponseRecorder) Problem {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != ProblemMediaType {
		t.Fatalf("Content-Type %q, want %q; body %s", ct, ProblemMediaType, rec.Body)
	}
	var p Problem
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode problem: %v", err)
	}
	if p.Status != rec.Code {
		t.Errorf("problem status %d, answer status %d", p.Status, rec.Code)
	}
	if !strings.HasPrefix(p.Type, ProblemTypeBase) || p.Title == "" || !strings.HasPrefix(p.Instance, "urn:uuid:") {
		t.Errorf("problem envelope incomplete: %+v", p)
	}
	if info := problemInfo(p.Code()); info.Code != p.Code() || info.Status != p.Status || info.Title != p.Title {
		t.Errorf("problem %+v does not match its catalogue entry %+v", p, info)
	}
	return p
}

func decodeJSON[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %s", ct, rec.Body)
	}
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %T: %v; body %s", v, err, rec.Body)
	}
	return v
}
