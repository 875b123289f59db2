package users

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/callguard/callguard/events/schema"
)

// Password lengths. Twelve characters is the floor NIST SP 800-63B and
// most bank policies now ask of a password chosen by a person; the cap
// only bounds the work a hash of one sign-in costs.
const (
	MinPassword = 12
	MaxPassword = 1024
)

// Params are argon2id's cost parameters and the sizes of salt and key.
type Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism (lanes).
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams are the parameters new hashes get: argon2id with 64 MiB,
// one pass, two lanes, a 16-byte salt and a 32-byte key. A sign-in is on
// a person's path and the guard runs on a couple of cores next to live
// calls: this costs about 0.1 s of one core, is above OWASP's floor for
// argon2id (46 MiB at one pass) and has RFC 9106's memory of its second
// recommendation, whose three passes and four lanes would take a whole
// small machine for a quarter second per sign-in. Parameters are stored in
// each hash, so raising them later leaves old hashes valid.
func DefaultParams() Params {
	return Params{Memory: 64 * 1024, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}
}

// Bounds of the parameters a stored hash may name. They are generous for
// any sane choice and keep a hash that was tampered with from asking for
// gigabytes or minutes at each sign-in.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 16
	minSalt    = 8
	maxSalt    = 64
	minKey     = 16
	maxKey     = 64
	phcVersion = argon2.Version // 0x13 = 19
)

// ErrPHC marks a hash that is not an argon2id PHC string this package
// accepts.
var ErrPHC = errors.New("not an argon2id PHC hash")

// PHC is a parsed argon2id hash in the PHC string format:
// $argon2id$v=19$m=65536,t=1,p=2$<salt>$<key>, salt and key in base64
// without padding.
type PHC struct {
	Params
	Salt, Key []byte
}

// ParsePHC parses s strictly: the argon2id algorithm, version 19, the
// parameters in the order m, t, p and within bounds, and salt and key of
// sane lengths.
func ParsePHC(s string) (PHC, error) {
	var h PHC
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return h, fmt.Errorf("%w: want $argon2id$v=19$m=N,t=N,p=N$salt$key", ErrPHC)
	}
	if parts[1] != "argon2id" {
		return h, fmt.Errorf("%w: algorithm %q", ErrPHC, clip(parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(phcVersion) {
		return h, fmt.Errorf("%w: version %q, want v=%d", ErrPHC, clip(parts[2]), phcVersion)
	}
	ps := strings.Split(parts[3], ",")
	if len(ps) != 3 {
		return h, fmt.Errorf("%w: parameters %q, want m=N,t=N,p=N", ErrPHC, clip(parts[3]))
	}
	m, err := param(ps[0], "m", 1, maxMemory)
	if err != nil {
		return h, err
	}
	t, err := param(ps[1], "t", 1, maxTime)
	if err != nil {
		return h, err
	}
	p, err := param(ps[2], "p", 1, 255)
	if err != nil {
		return h, err
	}
	if m < 8*p {
		return h, fmt.Errorf("%w: m=%d is below 8 KiB per lane (p=%d)", ErrPHC, m, p)
	}
	h.Memory, h.Time, h.Threads = uint32(m), uint32(t), uint8(p)
	if h.Salt, err = b64(parts[4], "salt", minSalt, maxSalt); err != nil {
		return h, err
	}
	if h.Key, err = b64(parts[5], "key", minKey, maxKey); err != nil {
		return h, err
	}
	h.SaltLen, h.KeyLen = uint32(len(h.Salt)), uint32(len(h.Key))
	return h, nil
}

func param(s, name string, lo, hi uint64) (uint64, error) {
	v, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, fmt.Errorf("%w: parameter %q, want %s=", ErrPHC, clip(s), name)
	}
	// Digits only, no sign, no leading zero: one spelling per hash.
	if v == "" || (len(v) > 1 && v[0] == '0') || strings.TrimLeft(v, "0123456789") != "" {
		return 0, fmt.Errorf("%w: %s=%q is not a number", ErrPHC, name, clip(v))
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%s, want %d to %d", ErrPHC, name, clip(v), lo, hi)
	}
	return n, nil
}

func b64(s, name string, lo, hi int) ([]byte, error) {
	// The decoder skips CR and LF: refuse them, so that a hash has one
	// spelling.
	b, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil || strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: %s is not unpadded base64", ErrPHC, name)
	}
	if len(b) < lo || len(b) > hi {
		return nil, fmt.Errorf("%w: %s of %d bytes, want %d to %d", ErrPHC, name, len(b), lo, hi)
	}
	return b, nil
}

// Encode returns the PHC string of h.
func (h PHC) Encode() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", phcVersion, h.Memory, h.Time, h.Threads,
		base64.RawStdEncoding.EncodeToString(h.Salt), base64.RawStdEncoding.EncodeToString(h.Key))
}

func clip(s string) string {
	if len(s) > 32 {
		s = strings.ToValidUTF8(s[:32], "") + "…"
	}
	return s
}

// Hasher hashes and checks passwords. It lets at most a few hashes run at
// once: each takes Params.Memory, and a flood of sign-ins must queue, not
// exhaust the node's memory.
type Hasher struct {
	params Params
	randMu sync.Mutex // an injected reader need not be safe for concurrent use
	rand   io.Reader
	sem    chan struct{}
}

// NewHasher returns a Hasher of new hashes with p, salts drawn from
// random (crypto/rand.Reader in production), at most concurrent hashes at
// once (at least 1).
func NewHasher(p Params, random io.Reader, concurrent int) *Hasher {
	return &Hasher{params: p, rand: random, sem: make(chan struct{}, max(concurrent, 1))}
}

// Params returns the parameters of new hashes.
func (h *Hasher) Params() Params { return h.params }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("users: wait to hash a password: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

func (h *Hasher) random(n int) ([]byte, error) {
	b := make([]byte, n)
	h.randMu.Lock()
	defer h.randMu.Unlock()
	_, err := io.ReadFull(h.rand, b)
	return b, err
}

// Hash returns the PHC string of password's argon2id hash with a fresh
// salt. It does not check the password's length (CheckPassword does).
func (h *Hasher) Hash(ctx context.Context, password string) (schema.Secret, error) {
	salt, err := h.random(int(h.params.SaltLen))
	if err != nil {
		return "", fmt.Errorf("users: draw a salt: %w", err)
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	return schema.Secret(PHC{Params: h.params, Salt: salt, Key: key}.Encode()), nil
}

// Verify reports whether password hashes to hash, comparing the keys in
// constant time. A hash that does not parse is an error, not a mismatch.
func (h *Hasher) Verify(ctx context.Context, hash schema.Secret, password string) (bool, error) {
	p, err := ParsePHC(hash.Reveal())
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), p.Salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(key, p.Key) == 1, nil
}

// ErrPassword marks a password that breaks the rule of CheckPassword.
var ErrPassword = errors.New("unacceptable password")

// CheckPassword checks a new password: valid UTF-8, at least MinPassword
// characters and at most MaxPassword bytes. Its errors never quote the
// password.
func CheckPassword(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: it is not valid UTF-8 text", ErrPassword)
	case n < MinPassword:
		return fmt.Errorf("%w: it has %d characters, at least %d are needed", ErrPassword, n, MinPassword)
	case len(password) > MaxPassword:
		return fmt.Errorf("%w: it is %d bytes, at most %d", ErrPassword, len(password), MaxPassword)
	}
	return nil
}
