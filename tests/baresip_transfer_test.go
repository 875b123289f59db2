package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/events/porttest"
	"github.com/callguard/callguard/sip/siptest"
)

// baresip (Debian's 1.0.0) as the PBX side transfers a passed call: it
// answers automatically, and its menu's /transfer command REFERs the call
// to an allowed number; the guard places it at GUARD_CARRIER_OUTBOUND
// (SIPp uas_target_noref.xml: baresip 1.0 sends no Referred-By), moves the caller (SIPp uac_transfer.xml, which
// must see the re-INVITE with the target's offer) and NOTIFYs baresip,
// which hangs up its leg on the NOTIFY 200.
func TestBaresipTransfersAPassedCall(t *testing.T) {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		t.Skip("baresip is not installed (apt-get install -y baresip); CI installs it")
	}
	sippPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pbxPort, targetPort, consPort := porttest.Port(t), porttest.Port(t), porttest.Port(t)
	g, sipAddr, _ := guardSIP(t, "sip:agent@127.0.0.1:"+strconv.Itoa(pbxPort),
		"GUARD_TRANSFER_TARGETS=pbx,+4930123",
		"GUARD_CARRIER_OUTBOUND=127.0.0.1:"+strconv.Itoa(targetPort))

	cfg := t.TempDir()
	config := fmt.Sprintf(`module_path /usr/lib/baresip/modules
sip_listen 127.0.0.1:%d
audio_source aubridge,x
audio_player aubridge,x
audio_alert aubridge,x
module g711.so
module aubridge.so
module cons.so
cons_listen 127.0.0.1:%d
module_app account.so
module_app menu.so
`, pbxPort, consPort)
	for name, body := range map[string]string{
		"config":   config,
		"accounts": "<sip:agent@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU\n",
		"contacts": "",
	} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out lockedBuffer
	cmd := exec.CommandContext(ctx, bin, "-f", cfg, "-t", "80")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})

	target := startSIPp(ctx, t, "sipp uas_target_noref", "uas_target_noref.xml",
		"-p", strconv.Itoa(targetPort), "-mp", strconv.Itoa(porttest.Block(t, 4)), "-m", "1", "-timeout", "60s", "-timeout_error")
	waitBound(ctx, t, target, targetPort)
	inf := writeInjection(t, "baresip_transfer.csv", freshCallers("+7999540", 1)...)
	uac := startSIPp(ctx, t, "sipp uac_transfer", "uac_transfer.xml", sipAddr,
		"-inf", inf, "-s", tollFree, "-p", strconv.Itoa(porttest.Port(t)), "-mp", strconv.Itoa(porttest.Block(t, 4)),
		"-m", "1", "-timeout", "60s", "-timeout_error")

	// Once baresip has answered, transfer the call from its menu.
	err = siptest.Poll(ctx, 200*time.Millisecond, func() error {
		if !strings.Contains(out.String(), "Call established") {
			return fmt.Errorf("baresip has not answered")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\nbaresip:\n%s\nguard:\n%s", err, out.String(), g.output())
	}
	cons, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(consPort))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if _, err := cons.Write([]byte("/transfer sip:+4930123456@127.0.0.1\n")); err != nil {
		t.Fatal(err)
	}
	expectAllSuccessful(t, uac, 1)
	expectAllSuccessful(t, target, 1)
	if !strings.Contains(g.output(), "call transferred") {
		t.Errorf("the guard did not transfer the call")
	}
	// baresip ends its own leg on the NOTIFY 200 (before the caller's BYE
	// ends the call): it read the guard's sipfrag.
	if !strings.Contains(g.output(), "transferor hung up its leg") {
		t.Errorf("baresip did not hang up its leg after the transfer")
	}
	if t.Failed() {
		t.Logf("baresip:\n%s\nguard:\n%s", out.String(), g.output())
		return
	}
	t.Logf("baresip said:\n%s\nguard:\n%s", out.String(), g.output())
}
