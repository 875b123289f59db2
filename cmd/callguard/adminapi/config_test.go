package adminapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesUnsafeConfig(t *testing.T) {
	n := testNormalizer(t)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" : New succeeds
	}{
		{"every interface, no token", Config{Listen: ":8780"}, "beyond loopback"},
		{"wildcard IPv4, no token", Config{Listen: "0.0.0.0:8780"}, "beyond loopback"},
		{"LAN address, no token", Config{Listen: "192.168.1.5:8780"}, "beyond loopback"},
		{"wildcard IPv6, no token", Config{Listen: "[::]:8780"}, "beyond loopback"},
		{"host name, no token", Config{Listen: "guard.example.com:8780"}, "beyond loopback"},
		{"loopback, no token", Config{Listen: "127.0.0.1:8780"}, "GUARD_ADMIN_TOKEN is empty"},
		{"default listen, no token", Config{}, "GUARD_ADMIN_TOKEN is empty"},
		{"IPv6 loopback, no token", Config{Listen: "[::1]:8780"}, "GUARD_ADMIN_TOKEN is empty"},
		{"short token", Config{Token: "secret"}, "at least 16"},
		{"token with a space", Config{Token: "correct horse battery staple"}, "b64token"},
		{"token with a newline", Config{Token: "0123456789abcdef\n"}, "b64token"},
		{"listen without a port", Config{Token: testToken, Listen: "127.0.0.1"}, "not host:port"},
		{"half of TLS", Config{Token: testToken, TLSCert: "cert.pem"}, "both"},
		{"loopback with token", Config{Token: testToken}, ""},
		{"localhost with token", Config{Token: testToken, Listen: "localhost:0"}, ""},
		{"beyond loopback with token", Config{Token: testToken, Listen: "0.0.0.0:8780"}, ""},
		{"base64 token", Config{Token: "q83vEjRWeJq8z/7+AQIDBA=="}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if verr := tt.cfg.Validate(); (verr == nil) != (tt.wantErr == "") {
				t.Errorf("Validate: %v, want an error saying %q", verr, tt.wantErr)
			}
			s, err := New(tt.cfg, Deps{Callers: &fakeCallers{}, Normalizer: n})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if s.cfg.Listen == "" || s.cfg.RequestTimeout <= 0 {
					t.Errorf("defaults not filled in: listen %q, timeout %v", s.cfg.Listen, s.cfg.RequestTimeout)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %+v", tt.cfg)
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want ErrConfig saying %q", err, tt.wantErr)
			}
			if tt.cfg.Token != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.cfg.Token)) {
				t.Errorf("the error repeats the token: %q", err)
			}
		})
	}
}

func TestNewNeedsDeps(t *testing.T) {
	n := testNormalizer(t)
	if _, err := New(Config{Token: testToken}, Deps{Normalizer: n}); err == nil || !strings.Contains(err.Error(), "Callers") {
		t.Errorf("no Callers: %v", err)
	}
	if _, err := New(Config{Token: testToken}, Deps{Callers: &fakeCallers{}}); err == nil || !strings.Contains(err.Error(), "Normalizer") {
		t.Errorf("no Normalizer: %v", err)
	}
}

// TestServeShutsDownGracefully runs the server on a real socket, serves a
// request and stops it through its context.
func TestServeShutsDownGracefully(t *testing.T) {
	s, err := New(Config{Token: testToken, Listen: "127.0.0.1:0"}, Deps{
		Callers: &fakeCallers{}, Normalizer: testNormalizer(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}
	c := &Client{BaseURL: base, Token: testToken, HTTP: hc}
	if _, err := c.Caller(context.Background(), key); err != nil {
		t.Fatalf("Caller over the socket: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := hc.Get(base + "/healthz"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

func TestListenAndServeReportsListenErrors(t *testing.T) {
	var lc net.ListenConfig
	busy, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s, err := New(Config{Token: testToken, Listen: busy.Addr().String()}, Deps{
		Callers: &fakeCallers{}, Normalizer: testNormalizer(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ListenAndServe(context.Background()); err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("ListenAndServe on a busy port: %v", err)
	}
}

// TestServeTLS serves HTTPS when a certificate and key are configured.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := writeSelfSigned(t, certFile, keyFile)
	s, err := New(Config{Token: testToken, TLSCert: certFile, TLSKey: keyFile}, Deps{
		Callers: &fakeCallers{}, Normalizer: testNormalizer(t), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c := &Client{BaseURL: "https://" + ln.Addr().String(), Token: testToken, HTTP: hc}
	if _, err := c.Caller(context.Background(), key); err != nil {
		t.Errorf("Caller over TLS: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func writeSelfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "callguard test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
