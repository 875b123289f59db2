package tests

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
)

// A console on its own listener beside an admin API that has a
// certificate is served over TLS with that certificate, and its cookies
// are Secure there: a session ID never travels in clear. Signing in over
// HTTPS works end to end.
func TestConsoleOverTLS(t *testing.T) {
	certFile, keyFile, client := testCertificate(t)
	dir := t.TempDir()
	port := porttest.Port(t)
	const token = "console-tls-test-token-0123456789"
	g := startGuard(t, "GUARD_DATA_DIR="+dir, "GUARD_ADMIN_TOKEN="+token,
		"GUARD_ADMIN_TLS_CERT="+certFile, "GUARD_ADMIN_TLS_KEY="+keyFile,
		"GUARD_CONSOLE_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	admin := "https://" + adminAddr(t, g)
	console := "https://127.0.0.1:" + strconv.Itoa(port)

	body, _ := json.Marshal(map[string]string{"name": "tls.admin", "role": "admin", "password": "a long enough secret", "by": "setup", "why": "TLS test"})
	req, _ := http.NewRequest("POST", admin+"/v1/users", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST /v1/users over TLS: %v", err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/users over TLS: %d %s", res.StatusCode, answer)
	}

	// Plain HTTP on the console's port gets no page.
	if res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://127.0.0.1:" + strconv.Itoa(port) + "/console/signin"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP to the TLS console answered 200")
		}
	}

	jar, _ := cookiejar.New(nil)
	client.Jar = jar
	res, err = client.Get(console + "/console/signin")
	if err != nil {
		t.Fatalf("GET /console/signin over TLS: %v", err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /console/signin over TLS: %d", res.StatusCode)
	}
	expectSecureCookies(t, "sign-in form", res)
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("the sign-in form has no csrf field:\n%s", page)
	}
	form := url.Values{"user": {"tls.admin"}, "password": {"a long enough secret"}, "csrf": {string(m[1])}}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, _ = http.NewRequest("POST", console+"/console/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", console)
	res, err = client.Do(req)
	if err != nil {
		t.Fatalf("POST /console/signin over TLS: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/console/" {
		t.Fatalf("sign-in over TLS: %d to %q, want 303 to /console/", res.StatusCode, res.Header.Get("Location"))
	}
	expectSecureCookies(t, "signed in", res)
	var session bool
	for _, c := range res.Cookies() {
		session = session || (c.Name == "callguard_session" && c.Value != "")
	}
	if !session {
		t.Fatalf("sign-in over TLS set no session cookie: %v", res.Header.Values("Set-Cookie"))
	}
	res, err = client.Get(console + "/console/")
	if err != nil {
		t.Fatalf("GET /console/ over TLS: %v", err)
	}
	page, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="today"`) {
		t.Fatalf("the Today page over TLS after sign-in: %d\n%s", res.StatusCode, page)
	}
}

// expectSecureCookies fails on a cookie set without Secure, HttpOnly or
// SameSite=Strict.
func expectSecureCookies(t *testing.T, what string, res *http.Response) {
	t.Helper()
	if len(res.Cookies()) == 0 {
		t.Errorf("%s: no cookie set", what)
	}
	for _, c := range res.Cookies() {
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
			t.Errorf("%s: cookie %s is Secure=%v HttpOnly=%v SameSite=%v; over TLS all three must hold", what, c.Name, c.Secure, c.HttpOnly, c.SameSite)
		}
	}
}

// testCertificate writes the certificate and key of net/http/httptest's
// TLS server (valid for 127.0.0.1) and returns a client that trusts them.
func testCertificate(t *testing.T) (certFile, keyFile string, client *http.Client) {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	cert := srv.TLS.Certificates[0]
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return certFile, keyFile, &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}
