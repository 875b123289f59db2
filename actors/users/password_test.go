package users

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/callguard/callguard/events/schema"
)

// testParams keep unit tests fast; the production parameters are
// DefaultParams.
var testParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestDefaultParamsParse(t *testing.T) {
	p := DefaultParams()
	h := PHC{Params: p, Salt: make([]byte, p.SaltLen), Key: make([]byte, p.KeyLen)}
	got, err := ParsePHC(h.Encode())
	if err != nil || got.Params != p {
		t.Fatalf("the default parameters do not survive their own hash: %+v, %v", got.Params, err)
	}
	if !strings.HasPrefix(h.Encode(), "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Fatalf("PHC form: %s", h.Encode())
	}
}

func TestParsePHC(t *testing.T) {
	salt := base64.RawStdEncoding.EncodeToString([]byte("0123456789abcdef"))
	key := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	tests := []struct {
		in   string
		want Params // zero: refused
	}{
		{"$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key, Params{65536, 1, 2, 16, 32}},
		{"$argon2id$v=19$m=64,t=3,p=4$" + salt + "$" + key, Params{64, 3, 4, 16, 32}},
		{"$argon2i$v=19$m=65536,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=16$m=65536,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$m=65536,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$t=1,m=65536,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=65536,t=1$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=065536,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=+65536,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=4294967296,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=2097152,t=1,p=2$" + salt + "$" + key, Params{}}, // 2 GiB: over the bound
		{"$argon2id$v=19$m=65536,t=0,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=65536,t=1,p=0$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=65536,t=1,p=256$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key, Params{}},
		{"$argon2id$v=19$m=65536,t=1,p=2$" + salt + "=$" + key, Params{}},
		{"$argon2id$v=19$m=65536,t=1,p=2$c2Fs$" + key, Params{}},
		{"$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key[:10], Params{}},
		{"$argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key + "$", Params{}},
		{"argon2id$v=19$m=65536,t=1,p=2$" + salt + "$" + key, Params{}},
		{"", Params{}},
		{"plaintext password", Params{}},
	}
	for _, tt := range tests {
		got, err := ParsePHC(tt.in)
		if tt.want == (Params{}) {
			if err == nil || !errors.Is(err, ErrPHC) {
				t.Errorf("ParsePHC(%q) = %+v, %v: want ErrPHC", tt.in, got.Params, err)
			}
			continue
		}
		if err != nil || got.Params != tt.want {
			t.Errorf("ParsePHC(%q) = %+v, %v; want %+v", tt.in, got.Params, err, tt.want)
			continue
		}
		if got.Encode() != tt.in {
			t.Errorf("ParsePHC(%q).Encode() = %q", tt.in, got.Encode())
		}
	}
}

// FuzzParsePHC: a stored hash is outside input to the password check.
// Whatever parses must be within the bounds and encode back to itself.
func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=1,p=2$MDEyMzQ1Njc4OWFiY2RlZg$BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc")
	f.Add("$argon2id$v=19$m=64,t=3,p=4$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrPHC) {
				t.Fatalf("error %v is not ErrPHC", err)
			}
			return
		}
		if h.Memory > maxMemory || h.Time < 1 || h.Time > maxTime || h.Threads < 1 || h.Memory < 8*uint32(h.Threads) ||
			len(h.Salt) < minSalt || len(h.Salt) > maxSalt || len(h.Key) < minKey || len(h.Key) > maxKey {
			t.Fatalf("out of bounds: %+v", h.Params)
		}
		if h.Encode() != s {
			t.Fatalf("%q encodes back as %q", s, h.Encode())
		}
	})
}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	salt := []byte("fixed salt 16 b!")
	h := NewHasher(testParams, bytes.NewReader(salt), 1)
	got, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	// The same as argon2id itself gives for that salt: the injected
	// random source is the salt's.
	want := PHC{Params: testParams, Salt: salt, Key: argon2.IDKey([]byte("correct horse battery"), salt, 1, 64, 1, 32)}.Encode()
	if got.Reveal() != want {
		t.Fatalf("hash %s, want %s", got.Reveal(), want)
	}
	tests := []struct {
		password string
		match    bool
	}{
		{"correct horse battery", true},
		{"correct horse batterY", false},
		{"correct horse battery ", false},
		{"", false},
	}
	for _, tt := range tests {
		ok, err := h.Verify(ctx, got, tt.password)
		if err != nil || ok != tt.match {
			t.Errorf("Verify(%q) = %v, %v; want %v", tt.password, ok, err, tt.match)
		}
	}
	if _, err := h.Verify(ctx, schema.Secret("not a hash"), "x"); !errors.Is(err, ErrPHC) {
		t.Errorf("Verify of a broken hash: %v", err)
	}
	// A fresh salt every time from crypto/rand.
	r := NewHasher(testParams, rand.Reader, 1)
	a, _ := r.Hash(ctx, "same password here")
	b, _ := r.Hash(ctx, "same password here")
	if a == b {
		t.Error("two hashes of one password are equal: the salt is not fresh")
	}
	if _, err := NewHasher(testParams, bytes.NewReader(nil), 1).Hash(ctx, "long enough password"); err == nil {
		t.Error("an empty random source gave a hash")
	}
}

// TestHasherBoundsConcurrentHashes: with the hasher's slots taken, one
// more hash waits, and gives up with its context.
func TestHasherBoundsConcurrentHashes(t *testing.T) {
	h := NewHasher(testParams, rand.Reader, 2)
	ctx := context.Background()
	for range 2 {
		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(short, "long enough password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third hash with two running: %v, want it to wait and time out", err)
	}
	h.release()
	if _, err := h.Hash(ctx, "long enough password"); err != nil {
		t.Fatalf("with a slot free: %v", err)
	}
}

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		pw   string
		want string // in the error; "" for none
	}{
		{"twelve chars", ""},
		{"пароль-длинный", ""}, // 14 characters, 27 bytes
		{"short", "5 characters, at least 12"},
		{"пароль-12", "9 characters"}, // 9 characters though 15 bytes
		{"", "0 characters"},
		{strings.Repeat("x", MaxPassword), ""},
		{strings.Repeat("x", MaxPassword+1), "at most 1024"},
		{"bad utf-8 \xff\xfe password", "not valid UTF-8"},
	}
	for _, tt := range tests {
		err := CheckPassword(tt.pw)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckPassword(%.20q): %v", tt.pw, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrPassword)):
			t.Errorf("CheckPassword(%.20q) = %v, want %q", tt.pw, err, tt.want)
		case err != nil && len(tt.pw) > 3 && strings.Contains(err.Error(), tt.pw):
			t.Errorf("the error quotes the password: %v", err)
		}
	}
}
