package dtmf

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestCollectorOrdersAllSources(t *testing.T) {
	c, err := NewCollector(CollectorConfig{KeepInBand: true})
	if err != nil {
		t.Fatal(err)
	}
	tone, err := Dial("7", 80*time.Millisecond, 60*time.Millisecond, -8)
	if err != nil {
		t.Fatal(err)
	}
	h := &rtp.Header{SSRC: 1, Timestamp: 1000}
	for i := 0; i+160 <= len(tone); i += 160 {
		c.Audio(h, tone[i:i+160])
	}
	if _, err := c.Info("application/dtmf-relay", []byte("Signal=3\r\nDuration=100\r\n")); err != nil {
		t.Fatal(err)
	}
	for _, p := range press(1, 5000, 9, 3) {
		c.Event(&rtp.Header{SSRC: p[0].(uint32), Timestamp: p[1].(uint32)}, p[2].([]byte))
	}
	if got := c.Code(); got != "739" {
		t.Errorf("code = %q, want 739", got)
	}
	want := []Key{{'7', SourceInBand}, {'3', SourceInfo}, {'9', SourceRFC4733}}
	for i, k := range c.Keys() {
		if k != want[i] {
			t.Errorf("key %d = %+v, want %+v", i, k, want[i])
		}
	}
	if s := c.Stats(); s.Keys != 3 || s.EventPackets != 6 || s.InBandDisabled {
		t.Errorf("stats = %+v", s)
	}
}

func TestCollectorStopsInBandAfterEvents(t *testing.T) {
	c, err := NewCollector(CollectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := &rtp.Header{SSRC: 1}
	c.Event(&rtp.Header{SSRC: 1, Timestamp: 10}, TelephoneEvent{Event: 2, Duration: 160}.Marshal())
	// The same key also left in the audio by the gateway.
	tone, _ := Dial("2", 100*time.Millisecond, 50*time.Millisecond, -8)
	c.Audio(h, tone)
	c.Event(&rtp.Header{SSRC: 1, Timestamp: 10}, []byte{1, 2}) // malformed
	if got := c.Code(); got != "2" {
		t.Errorf("code = %q, want 2", got)
	}
	if s := c.Stats(); !s.InBandDisabled || s.BadEvents != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestCollectorWait(t *testing.T) {
	c, err := NewCollector(CollectorConfig{MaxKeys: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, k := range "1234" {
			c.Add(Key{Key: k, Source: SourceInfo})
		}
	})
	code, err := c.Wait(ctx, 2)
	if err != nil || code != "12" {
		t.Errorf("Wait(2) = %q, %v", code, err)
	}
	k, err := c.Next(ctx, 2)
	if err != nil || k.Key != '3' {
		t.Errorf("Next(2) = %+v, %v", k, err)
	}
	wg.Wait()
	if s := c.Stats(); s.Dropped != 1 || s.Keys != 3 {
		t.Errorf("stats = %+v, want one dropped", s)
	}

	// The window closes before the fourth key: what arrived, and the cause.
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	code, err = c.Wait(short, 4)
	if !errors.Is(err, context.DeadlineExceeded) || code != "123" {
		t.Errorf("Wait(4) = %q, %v; want 123 and DeadlineExceeded", code, err)
	}
	if code, err := c.Wait(ctx, 0); code != "" || err != nil {
		t.Errorf("Wait(0) = %q, %v", code, err)
	}
	if _, err := c.Next(ctx, -1); err == nil {
		t.Error("Next(-1) did not fail")
	}
}

func TestCollectorInfoErrors(t *testing.T) {
	c, _ := NewCollector(CollectorConfig{})
	if _, err := c.Info("application/sdp", nil); !errors.Is(err, ErrContentType) {
		t.Errorf("err = %v", err)
	}
	if _, err := NewCollector(CollectorConfig{MaxKeys: -1}); err == nil {
		t.Error("negative MaxKeys accepted")
	}
	if _, err := NewCollector(CollectorConfig{Detector: DetectorConfig{MinPurity: 2}}); !errors.Is(err, ErrConfig) {
		t.Errorf("bad detector config: %v", err)
	}
	if SourceInBand.String() != "inband" || Source(9).String() != "source(9)" {
		t.Error("Source.String")
	}
}
