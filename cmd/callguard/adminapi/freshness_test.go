package adminapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/embedded"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/lists"
	"github.com/callguard/callguard/projections/readside"
	"github.com/callguard/callguard/projections/runner"
)

// TestReadsSayHowCurrent: every read of the lists, profiles and reports
// waits for its own projection and says how current it is, in the
// X-Projection-Status header and, as JSON, in "projection".
func TestReadsSayHowCurrent(t *testing.T) {
	routes := []struct {
		path, projection string
		csv              bool
	}{
		{path: "/v1/blacklist", projection: "lists"},
		{path: "/v1/blacklist?format=csv", projection: "lists", csv: true},
		{path: "/v1/whitelist", projection: "lists"},
		{path: "/v1/callers", projection: "profiles"},
		{path: "/v1/reports/daily", projection: "reports"},
		{path: "/v1/reports/top?format=csv", projection: "reports", csv: true},
		{path: "/v1/reports/top", projection: "reports"},
	}
	for _, fresh := range []runner.Freshness{
		{Status: runner.ReadCurrent, Head: "9", Checkpoint: "9"},
		{Status: runner.ReadLagging, Head: "9", Checkpoint: "4", Reason: "lists cannot write its database since ...; it retries by itself"},
		{Status: runner.ReadFailed, Head: "9", Checkpoint: "4", Reason: "lists stopped at 5 (CallEnded): bad payload; rebuild it once the cause is fixed"},
	} {
		for _, rt := range routes {
			t.Run(fmt.Sprintf("%s %s", fresh.Status, rt.path), func(t *testing.T) {
				s, _, _, _, fj := withReadSide(t, &fakeCallers{})
				fj.fresh = fresh
				rec := serve(t, s, req{method: "GET", path: rt.path})
				if rec.Code != http.StatusOK {
					t.Fatalf("%d %s", rec.Code, rec.Body)
				}
				if got := rec.Header().Get(HeaderProjectionStatus); got != string(fresh.Status) {
					t.Errorf("%s: %q, want %q", HeaderProjectionStatus, got, fresh.Status)
				}
				if len(fj.awaited) != 1 || !slices.Equal(fj.awaited[0], []string{rt.projection}) {
					t.Errorf("awaited %v, want [[%s]]", fj.awaited, rt.projection)
				}
				if rt.csv {
					return
				}
				body := decodeJSON[struct {
					Projection *runner.Freshness `json:"projection"`
				}](t, rec)
				if body.Projection == nil || *body.Projection != fresh {
					t.Errorf("projection member %+v, want %+v", body.Projection, fresh)
				}
			})
		}
	}
}

// TestReadWaitIsBounded: a projection that does not catch up holds a
// read no longer than ReadWait; the answer is served, marked lagging.
func TestReadWaitIsBounded(t *testing.T) {
	s, _, _, _, fj := withReadSide(t, &fakeCallers{})
	s.cfg.ReadWait = 30 * time.Millisecond
	fj.block = true
	began := time.Now()
	rec := serve(t, s, req{method: "GET", path: "/v1/blacklist"})
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("the read took %v", took)
	}
	if rec.Code != http.StatusOK || rec.Header().Get(HeaderProjectionStatus) != "lagging" {
		t.Fatalf("%d %q", rec.Code, rec.Header().Get(HeaderProjectionStatus))
	}
	page := decodeJSON[listAnswer[lists.BlacklistEntry]](t, rec)
	if page.Total != 1 || page.Projection == nil || page.Projection.Status != runner.ReadLagging {
		t.Fatalf("answer %+v", page)
	}
}

// TestClientWarnsOfStaleAnswers: the Client tells its Stale hook about
// an answer that is not current, with the reason from the JSON body.
func TestClientWarnsOfStaleAnswers(t *testing.T) {
	s, _, _, _, fj := withReadSide(t, &fakeCallers{})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	var heard []runner.Freshness
	c := &Client{BaseURL: ts.URL, Token: testToken, HTTP: ts.Client(),
		Stale: func(_ string, fr runner.Freshness) { heard = append(heard, fr) }}
	ctx := context.Background()
	if _, err := c.ListBlacklist(ctx, lists.Query{}); err != nil || len(heard) != 0 {
		t.Fatalf("a current answer: %v, heard %v", err, heard)
	}
	fj.fresh = runner.Freshness{Status: runner.ReadFailed, Reason: "lists stopped at 5"}
	if _, err := c.ListBlacklist(ctx, lists.Query{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExportBlacklist(ctx, lists.Query{}); err != nil {
		t.Fatal(err)
	}
	if len(heard) != 2 || heard[0].Reason != "lists stopped at 5" || heard[1].Status != runner.ReadFailed || heard[1].Reason != "" {
		t.Fatalf("heard %+v", heard)
	}
}

// TestReadAfterWrite: over the real read side, whose cadence is set so
// long that only a waiting read makes it commit, a whitelist entry
// appended (as the grain does before the API answers the command) is in
// the very next read.
func TestReadAfterWrite(t *testing.T) {
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events"), embedded.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rs, err := readside.Open(ctx, readside.Config{Dir: dir, Store: store, Logger: quiet,
		Clock: func() time.Time { return testNow }, Runner: runner.Options{CommitInterval: time.Hour, SequentialPositions: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if err := rs.Start(ctx); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, &fakeCallers{}, nil)
	s.d.Lists, s.d.Reports, s.d.Profiles, s.d.Projections = rs.Lists, rs.Reports, rs.Profiles, rs.Runner
	pol, err := policy.New(policy.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		number := fmt.Sprintf("+7999000%04d", i)
		var st policy.State
		recs, err := pol.Whitelist(&st, number, policy.Command{ID: fmt.Sprintf("k%d", i), By: "alice", Why: "VIP"}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		props, err := schema.Proposals(recs, events.Metadata{Actor: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(ctx, schema.CallerStream(number), events.Any, props...); err != nil {
			t.Fatal(err)
		}
		rec := serve(t, s, req{method: "GET", path: "/v1/whitelist"})
		page := decodeJSON[listAnswer[lists.WhitelistEntry]](t, rec)
		if page.Total != i+1 || page.Projection == nil || page.Projection.Status != runner.ReadCurrent ||
			rec.Header().Get(HeaderProjectionStatus) != "current" {
			t.Fatalf("read %d after the write: %d entries, %+v", i, page.Total, page.Projection)
		}
		if !strings.Contains(rec.Body.String(), number) {
			t.Fatalf("read after the write lacks %s: %s", number, rec.Body)
		}
	}
	var body map[string]json.RawMessage
	rec := serve(t, s, req{method: "GET", path: "/v1/callers"})
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Header().Get(HeaderProjectionStatus) != "current" {
		t.Fatalf("callers: %v %q", err, rec.Header().Get(HeaderProjectionStatus))
	}
}

// TestOpenAPIDocumentsFreshness: every route whose answer says how
// current it is documents the X-Projection-Status header on its 200, and
// its JSON schema the projection member, with the statuses the runner
// gives.
func TestOpenAPIDocumentsFreshness(t *testing.T) {
	_, raw := loadOpenAPI(t)
	s, _, _, _, _ := withReadSide(t, &fakeCallers{})
	get := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	var stamped []string
	for _, rt := range s.routes {
		method, path, _ := strings.Cut(rt.pattern, " ")
		if method != "GET" || strings.Contains(path, "{") {
			continue
		}
		rec := serve(t, s, req{method: "GET", path: path})
		if rec.Header().Get(HeaderProjectionStatus) == "" {
			continue
		}
		stamped = append(stamped, path)
		ok200 := get(raw, "paths", path, "get", "responses", "200")
		if ref := get(ok200, "headers", HeaderProjectionStatus, "$ref"); ref != "#/components/headers/ProjectionStatus" {
			t.Errorf("%s: 200 does not document %s (%v)", path, HeaderProjectionStatus, ref)
		}
		schemaRef, _ := get(ok200, "content", "application/json", "schema", "$ref").(string)
		schema := get(raw, "components", "schemas", strings.TrimPrefix(schemaRef, "#/components/schemas/"))
		if ref := get(schema, "properties", "projection", "$ref"); ref != "#/components/schemas/Freshness" {
			t.Errorf("%s: schema %s has no projection member (%v)", path, schemaRef, ref)
		}
	}
	if len(stamped) != 5 {
		t.Errorf("routes that say how current they are: %v, want the lists, callers and reports", stamped)
	}
	want := []any{string(runner.ReadCurrent), string(runner.ReadLagging), string(runner.ReadFailed)}
	for _, enum := range []any{
		get(raw, "components", "headers", "ProjectionStatus", "schema", "enum"),
		get(raw, "components", "schemas", "Freshness", "properties", "status", "enum"),
	} {
		if got, _ := enum.([]any); !slices.Equal(got, want) {
			t.Errorf("enum %v, want %v", enum, want)
		}
	}
	states := []any{string(runner.Running), string(runner.Retrying), string(runner.Failed), string(runner.Stopped)}
	if got, _ := get(raw, "components", "schemas", "ProjectionStatus", "properties", "state", "enum").([]any); !slices.Equal(got, states) {
		t.Errorf("projection states %v, want %v", got, states)
	}
}
