package adminapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The console mounted on the API's listener: its paths reach it without
// the bearer token, and every other path is the API's as before.
func TestConsoleMountedBesideTheAPI(t *testing.T) {
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "console")
		w.WriteHeader(http.StatusTeapot)
	})
	s, err := New(Config{Token: testToken}, Deps{Callers: &fakeCallers{}, Normalizer: testNormalizer(t), Console: console, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path string
		token        bool
		console      bool
		status       int
	}{
		{"GET", "/console/", false, true, http.StatusTeapot},
		{"POST", "/console/signin", false, true, http.StatusTeapot},
		{"GET", "/console/static/app.js", false, true, http.StatusTeapot},
		{"GET", "/console", false, true, http.StatusTeapot},
		{"GET", "/consoles", false, false, http.StatusNotFound},
		{"GET", "/v1/blacklist", false, false, http.StatusUnauthorized},
		{"GET", "/v1/callers/%2B79990001122", true, false, http.StatusOK},
		{"GET", "/healthz", false, false, http.StatusOK},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.token {
			req.Header.Set("Authorization", "Bearer "+testToken)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if got := rec.Header().Get("X-Served-By") == "console"; got != tc.console || rec.Code != tc.status {
			t.Errorf("%s %s (token %v): status %d, console %v; want %d, console %v", tc.method, tc.path, tc.token, rec.Code, got, tc.status, tc.console)
		}
	}
}
