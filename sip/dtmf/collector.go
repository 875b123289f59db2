package dtmf

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/pion/rtp"
)

// Source is the way a key reached the guard.
type Source uint8

// The three ways a carrier conveys keys.
const (
	// SourceRFC4733 is a telephone-event in the RTP stream (RFC 4733).
	SourceRFC4733 Source = iota + 1
	// SourceInfo is a SIP INFO request (application/dtmf-relay or dtmf).
	SourceInfo
	// SourceInBand is a tone in the audio, found by the Detector.
	SourceInBand
)

// String names the source as events and logs spell it.
func (s Source) String() string {
	switch s {
	case SourceRFC4733:
		return "rfc4733"
	case SourceInfo:
		return "info"
	case SourceInBand:
		return "inband"
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// Key is one key typed by the caller and how it arrived.
type Key struct {
	Key    rune
	Source Source
}

// CollectorConfig configures a Collector. The zero value is usable.
type CollectorConfig struct {
	// MaxKeys bounds how many keys one call keeps; later keys are dropped
	// and counted. A code is a few digits; the bound stops a caller (or a
	// stuck tone generator) from growing the list without end. Default 32.
	MaxKeys int
	// Detector tunes in-band detection (zero fields take defaults).
	Detector DetectorConfig
	// KeepInBand keeps in-band detection on after the first RFC 4733
	// telephone-event of the call. By default it stops then: a gateway that
	// sends telephone-events often leaves the tones in the audio too, and
	// every key would count twice.
	KeepInBand bool
	// Logger receives debug records of keys and malformed payloads; nil
	// discards them.
	Logger *slog.Logger
}

// CollectorStats counts what a Collector received.
type CollectorStats struct {
	Keys           int // keys kept
	Dropped        int // keys beyond MaxKeys
	BadEvents      int // malformed telephone-event payloads
	EventPackets   int // telephone-event packets seen
	InBandDisabled bool
}

// Collector gathers the keys one call's caller types, from all three
// sources, in the order they arrive. Audio and Event are called by the RTP
// read loop (it implements the sip/media Sink interface), Info by the SIP
// request handler, Next and Wait by the call's challenge timer: it is safe
// for concurrent use, and one mutex owns all its state.
type Collector struct {
	log     *slog.Logger
	maxKeys int
	keep    bool

	mu       sync.Mutex
	keys     []Key
	changed  chan struct{} // closed and replaced when a key arrives
	detector *Detector
	events   EventDecoder
	inBand   bool
	stats    CollectorStats
}

// NewCollector returns a Collector for one call.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	det, err := NewDetector(cfg.Detector)
	if err != nil {
		return nil, fmt.Errorf("dtmf: collector: %w", err)
	}
	if cfg.MaxKeys < 0 {
		return nil, fmt.Errorf("dtmf: collector: MaxKeys %d is negative", cfg.MaxKeys)
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 32
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Collector{
		log: log, maxKeys: cfg.MaxKeys, keep: cfg.KeepInBand,
		changed: make(chan struct{}), detector: det, inBand: true,
	}, nil
}

// Audio runs in-band detection over one decoded audio packet.
func (c *Collector) Audio(_ *rtp.Header, pcm []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inBand {
		return
	}
	for _, k := range c.detector.Write(pcm) {
		c.addLocked(Key{Key: k, Source: SourceInBand})
	}
}

// Event decodes one telephone-event packet (RFC 4733) and adds the key it
// starts, if any. Malformed payloads are counted and logged, not fatal: the
// caller can still type the code another way.
func (c *Collector) Event(h *rtp.Header, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.EventPackets++
	if c.inBand && !c.keep {
		c.inBand = false
		c.stats.InBandDisabled = true
	}
	key, ok, err := c.events.Decode(h.SSRC, h.Timestamp, payload)
	if err != nil {
		c.stats.BadEvents++
		c.log.Debug("dtmf: bad telephone-event", "err", err, "ssrc", h.SSRC, "seq", h.SequenceNumber)
		return
	}
	if ok {
		c.addLocked(Key{Key: key, Source: SourceRFC4733})
	}
}

// Info parses the body of a SIP INFO request and adds its key. Errors wrap
// ErrContentType or ErrInfo, so the SIP handler can answer 415 or 400.
func (c *Collector) Info(contentType string, body []byte) (InfoKey, error) {
	k, err := ParseInfo(contentType, body)
	if err != nil {
		return InfoKey{}, err
	}
	c.Add(Key{Key: k.Key, Source: SourceInfo})
	return k, nil
}

// Add adds a key decoded elsewhere.
func (c *Collector) Add(k Key) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(k)
}

func (c *Collector) addLocked(k Key) {
	if len(c.keys) >= c.maxKeys {
		c.stats.Dropped++
		return
	}
	c.keys = append(c.keys, k)
	c.stats.Keys = len(c.keys)
	c.log.Debug("dtmf: key", "key", string(k.Key), "source", k.Source.String(), "n", len(c.keys))
	close(c.changed)
	c.changed = make(chan struct{})
}

// Keys returns a copy of the keys so far, in arrival order.
func (c *Collector) Keys() []Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Key(nil), c.keys...)
}

// Code returns the keys so far as a string, in arrival order.
func (c *Collector) Code() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return codeOf(c.keys)
}

func codeOf(keys []Key) string {
	b := make([]rune, len(keys))
	for i, k := range keys {
		b[i] = k.Key
	}
	return string(b)
}

// Stats returns the counters so far.
func (c *Collector) Stats() CollectorStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Next waits for the key at index i (0 is the first key of the call) and
// returns it; it returns at once if that key has arrived. It fails with the
// context's error when ctx ends first, the challenge window's deadline.
func (c *Collector) Next(ctx context.Context, i int) (Key, error) {
	if i < 0 {
		return Key{}, fmt.Errorf("dtmf: key index %d is negative", i)
	}
	for {
		c.mu.Lock()
		if i < len(c.keys) {
			k := c.keys[i]
			c.mu.Unlock()
			return k, nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Key{}, fmt.Errorf("dtmf: waiting for key %d: %w", i+1, context.Cause(ctx))
		}
	}
}

// Wait waits until n keys have arrived and returns the first n as a code.
// When ctx ends first it returns what arrived so far with the context's
// error.
func (c *Collector) Wait(ctx context.Context, n int) (string, error) {
	if n <= 0 {
		return "", nil
	}
	if _, err := c.Next(ctx, n-1); err != nil {
		return c.Code(), err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return codeOf(c.keys[:n]), nil
}
