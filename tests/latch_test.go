package tests

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// metricValue reads one sample of the guard's /metrics, 0 if absent.
func metricValue(t *testing.T, g *guardProcess, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(scrapeMetrics(t, g))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// challengeFrom places an anonymous (hence challenged) call whose SDP
// announces 127.0.0.2 while its RTP socket is bound to mediaIP, as a
// multi-homed host or a gateway behind NAT does, sending silence from the
// 183 on.
func challengeFrom(t *testing.T, ctx context.Context, target string, mediaIP string) *siptest.Call {
	t.Helper()
	trunk, err := siptest.NewFakeTrunk(siptest.TrunkConfig{MediaIP: netip.MustParseAddr(mediaIP)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { trunk.Close() })
	c, err := trunk.Call(ctx, siptest.CallOptions{
		Target: target, Caller: "anonymous", NoPAI: true, FromUser: "anonymous", Callee: "88005553535",
		EarlyRTP: true, AnnounceMediaIP: netip.MustParseAddr("127.0.0.2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.WaitResponse(ctx, 183); err != nil {
		t.Fatalf("no 183 with the challenge: %v", err)
	}
	return c
}

// hearTypeBridge hears the code, types it by RFC 4733 and waits until the
// PBX answered the bridged call and got the caller's RTP.
func hearTypeBridge(t *testing.T, ctx context.Context, c *siptest.Call, pbx *siptest.RecordingPBX) {
	t.Helper()
	prompts, err := sounds.Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	before := len(pbx.Calls())
	code, err := c.HearCode(ctx, sounds.NewRecognizer(prompts), siptest.HearOptions{Digits: 2})
	if err != nil {
		t.Fatalf("the caller did not hear the code (media not sent back to its real source?): %v", err)
	}
	if err := c.Type(ctx, code, siptest.DTMFOptions{Method: siptest.DTMFRFC4733}); err != nil {
		t.Fatal(err)
	}
	err = siptest.Poll(ctx, 50*time.Millisecond, func() error {
		calls := pbx.Calls()
		if len(calls) > before {
			p := calls[len(calls)-1]
			if _, ok := p.Answered(); ok && len(p.RTP()) > 0 {
				return nil
			}
		}
		return fmt.Errorf("not bridged to the PBX (with media) after typing %q", code)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Symmetric RTP (RFC 4961) through the binary. A caller whose SDP
// announces one address and whose RTP comes from the signalling peer's
// address hears the code (the guard latched and answers where the media
// comes from), types it and is bridged; the latch is logged and counted. A
// caller whose RTP comes from an address that is neither the signalling
// peer's, the SDP's, nor in GUARD_TRUSTED_MEDIA is ignored and counted,
// and is not bridged; the same source, once in GUARD_TRUSTED_MEDIA, is
// latched onto.
func TestSymmetricRTPLatching(t *testing.T) {
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, _ := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en")

	t.Run("latched onto the signalling peer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := challengeFrom(t, ctx, target, "127.0.0.1")
		hearTypeBridge(t, ctx, c, pbx)
		if v := metricValue(t, g, "callguard_rtp_latched_total"); v < 1 {
			t.Errorf("callguard_rtp_latched_total = %v, want at least 1", v)
		}
		if !regexp.MustCompile(`RTP latched onto the peer's real source.*sdpAddress=127\.0\.0\.2:\d+ source=127\.0\.0\.1:\d+`).MatchString(g.output()) {
			t.Errorf("no latch in the log:\n%s", g.output())
		}
		_ = c.Hangup(ctx)
	})

	t.Run("untrusted source refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		before := len(pbx.Calls())
		refused0 := metricValue(t, g, "callguard_rtp_refused_packets_total")
		c := challengeFrom(t, ctx, target, "127.0.0.3")
		// It cannot hear the code (nothing is sent to it); once the
		// guard answered it types keys anyway, which must not count.
		if _, err := c.WaitAnswer(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Type(ctx, "12", siptest.DTMFOptions{Method: siptest.DTMFRFC4733}); err != nil {
			t.Fatal(err)
		}
		err := siptest.Poll(ctx, 100*time.Millisecond, func() error {
			if v := metricValue(t, g, "callguard_rtp_refused_packets_total"); v < refused0+10 {
				return fmt.Errorf("callguard_rtp_refused_packets_total = %v, want at least %v", v, refused0+10)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`RTP from an untrusted source ignored.*source=127\.0\.0\.3:\d+`).MatchString(g.output()) {
			t.Errorf("no refused source in the log:\n%s", g.output())
		}
		if n := len(c.RTP()); n != 0 {
			t.Errorf("the untrusted source got %d RTP packets, want none", n)
		}
		if len(pbx.Calls()) != before {
			t.Errorf("the untrusted caller reached the PBX")
		}
		_ = c.Hangup(ctx)
	})

	g.stop(t)
	// This PBX announces 127.0.0.2 and sends from 127.0.0.1, its
	// signalling address: the guard latches onto it on the PBX leg.
	pbx2, err := siptest.NewRecordingPBX(siptest.PBXConfig{AnnounceMediaIP: netip.MustParseAddr("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx2.Close()
	g2, target2, _ := guardSIP(t, pbx2.URI(), "GUARD_LANGUAGE=en", "GUARD_TRUSTED_MEDIA=127.0.0.3/32")
	t.Run("latched onto GUARD_TRUSTED_MEDIA, and on the PBX leg", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := challengeFrom(t, ctx, target2, "127.0.0.3")
		hearTypeBridge(t, ctx, c, pbx2)
		if !regexp.MustCompile(`RTP latched onto the peer's real source.*leg=caller sdpAddress=127\.0\.0\.2:\d+ source=127\.0\.0\.3:\d+`).MatchString(g2.output()) {
			t.Errorf("no latch onto 127.0.0.3 in the log:\n%s", g2.output())
		}
		// The PBX's media reaches the caller through the relay (which
		// keeps the PBX's SSRC, unlike the guard's own prompt stream): the
		// guard took the PBX's packets from their real source.
		guardSSRC := c.RTP()[0].SSRC
		err := siptest.Poll(ctx, 50*time.Millisecond, func() error {
			for _, p := range c.RTP() {
				if p.SSRC != guardSSRC {
					return nil
				}
			}
			return fmt.Errorf("no RTP of the PBX reached the caller, only the guard's own stream (SSRC %08x)", guardSSRC)
		})
		if err != nil {
			t.Error(err)
		}
		if !regexp.MustCompile(`RTP latched onto the peer's real source.*leg=pbx sdpAddress=127\.0\.0\.2:\d+ source=127\.0\.0\.1:\d+`).MatchString(g2.output()) {
			t.Errorf("no latch on the PBX leg in the log:\n%s", g2.output())
		}
		if v := metricValue(t, g2, "callguard_rtp_latched_total"); v != 2 {
			t.Errorf("callguard_rtp_latched_total = %v, want 2 (caller and PBX legs)", v)
		}
		_ = c.Hangup(ctx)
	})
}
