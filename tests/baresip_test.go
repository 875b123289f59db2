package tests

import (
	"bytes"
	"context"
	endian "encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
	"github.com/callguard/callguard/sounds"
)

// lockedBuffer is an io.Writer safe to read while a process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// wavPCM reads the 16-bit samples of a WAV file that may still be being
// written (its header's length not yet final): everything after the
// 44-byte header.
func wavPCM(path string) []int16 {
	b, err := os.ReadFile(path)
	if err != nil || len(b) <= 44 {
		return nil
	}
	b = b[44:]
	pcm := make([]int16, len(b)/2)
	for i := range pcm {
		pcm[i] = int16(endian.LittleEndian.Uint16(b[2*i:]))
	}
	return pcm
}

// baresip (Debian's 1.0.0, a softphone nobody here wrote) as the caller:
// it hears the challenge in early media (its decoded audio recorded to a
// file by its sndfile module), types the code by RFC 4733 and is bridged
// to the PBX. On a host with an address besides loopback, baresip
// announces that address in its SDP and sends its RTP from 127.0.0.1 to
// the guard on loopback, the case of issue 12: the guard must latch.
func TestBaresipCallerThroughTheGuard(t *testing.T) {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Skip("baresip is not installed (apt-get install -y baresip); CI installs it")
	}
	pbx, err := siptest.NewRecordingPBX(siptest.PBXConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pbx.Close()
	g, target, _ := guardSIP(t, pbx.URI(), "GUARD_LANGUAGE=en", "GUARD_GRACE=10s")

	dir := t.TempDir()
	cfg, snd := filepath.Join(dir, "cfg"), filepath.Join(dir, "snd")
	for _, d := range []string{cfg, snd} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Thirty seconds of silence as the microphone.
	silence := filepath.Join(dir, "silence.wav")
	hdr := make([]byte, 44)
	n := 8000 * 30 * 2
	copy(hdr, "RIFF")
	endian.LittleEndian.PutUint32(hdr[4:], uint32(36+n))
	copy(hdr[8:], "WAVEfmt ")
	endian.LittleEndian.PutUint32(hdr[16:], 16)
	endian.LittleEndian.PutUint16(hdr[20:], 1)
	endian.LittleEndian.PutUint16(hdr[22:], 1)
	endian.LittleEndian.PutUint32(hdr[24:], 8000)
	endian.LittleEndian.PutUint32(hdr[28:], 16000)
	endian.LittleEndian.PutUint16(hdr[32:], 2)
	endian.LittleEndian.PutUint16(hdr[34:], 16)
	copy(hdr[36:], "data")
	endian.LittleEndian.PutUint32(hdr[40:], uint32(n))
	if err := os.WriteFile(silence, append(hdr, make([]byte, n)...), 0o644); err != nil {
		t.Fatal(err)
	}
	consPort := porttest.Port(t)
	config := fmt.Sprintf(`module_path /usr/lib/baresip/modules
sip_listen 127.0.0.1:%d
audio_source aufile,%s
audio_player aubridge,x
audio_alert aubridge,x
module g711.so
module aufile.so
module aubridge.so
module sndfile.so
module cons.so
cons_listen 127.0.0.1:%d
module_app account.so
module_app menu.so
snd_path %s
`, porttest.Port(t), silence, consPort, snd)
	if err := os.WriteFile(filepath.Join(cfg, "config"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "accounts"), []byte("<sip:anonymous@127.0.0.1>;regint=0;audio_codecs=PCMU\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "contacts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var out lockedBuffer
	cmd := exec.CommandContext(ctx, bin, "-f", cfg, "-e", "/dial sip:88005553535@"+target, "-t", "35")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	prompts, err := sounds.Load("en", "")
	if err != nil {
		t.Fatal(err)
	}
	rec := sounds.NewRecognizer(prompts)
	var code, last string
	err = siptest.Poll(ctx, 200*time.Millisecond, func() error {
		files, _ := filepath.Glob(filepath.Join(snd, "*-dec.wav"))
		if len(files) == 0 {
			return errors.New("baresip recorded no received audio")
		}
		got, err := rec.Recognize(wavPCM(files[0]))
		if err != nil || len(got) < 2 {
			return fmt.Errorf("no code heard yet: %v", err)
		}
		if got != last {
			last = got
			return fmt.Errorf("heard %q once", got)
		}
		code = got
		return nil
	})
	if err != nil {
		t.Fatalf("baresip did not hear the code: %v\nbaresip:\n%s\nguard:\n%s", err, out.String(), g.output())
	}
	cons, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(consPort))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for _, k := range code {
		if _, err := cons.Write([]byte(string(k))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // a key press, then the next
	}
	err = siptest.Poll(ctx, 100*time.Millisecond, func() error {
		if calls := pbx.Calls(); len(calls) > 0 {
			if _, ok := calls[0].Answered(); ok && len(calls[0].RTP()) > 50 {
				return nil
			}
		}
		return fmt.Errorf("not bridged to the PBX with media after typing %q", code)
	})
	if err != nil {
		t.Fatalf("%v\nbaresip:\n%s\nguard:\n%s", err, out.String(), g.output())
	}
	m := regexp.MustCompile(`RTP latched onto the peer's real source.* leg=caller sdpAddress=(\S+) source=127\.0\.0\.1:\d+`).FindStringSubmatch(g.output())
	if m != nil {
		t.Logf("baresip announced %s and sent from 127.0.0.1: latched, heard %q, typed it, bridged (%d RTP packets at the PBX)", m[1], code, len(pbx.Calls()[0].RTP()))
	} else {
		t.Logf("baresip announced its sending address (no other address on this host): no latch needed; heard %q, typed it, bridged", code)
	}
}
