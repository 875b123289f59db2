package guard

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// Remote targets (RFC 3261 §12.2): where in-dialog requests on a leg go.
// A leg starts with the Contact of its INVITE (the caller) or of its 2xx
// (the PBX); a re-INVITE or UPDATE answered 2xx replaces it with the
// Contact of the request (received from that leg) or of the 2xx (received
// from that leg in answer to ours), so a caller or PBX that moved gets its
// later BYE, re-INVITE, INFO and NOTIFY where it now is (§12.2.2).

// callerTarget is the caller leg's remote target.
func (s *session) callerTarget() sip.Uri {
	if u := s.callerTo.Load(); u != nil {
		return *u.Clone()
	}
	return *s.inv.Contact().Address.Clone()
}

// callerRelay is the caller leg, to send an in-dialog request to.
func (s *session) callerRelay() *relayTarget {
	return &relayTarget{txreq: s.dlg.TransactionRequest, write: s.dlg.WriteRequest, to: s.callerTarget(),
		transport: s.inv.Transport(), source: s.inv.Source(), after: s.answerDone,
		retarget: func(u sip.Uri) { s.callerTo.Store(&u) }}
}

// relay is the PBX leg, to send an in-dialog request to (nil before the
// INVITE went out).
func (p *pbxCall) relay() *relayTarget {
	d := p.dialog()
	if d == nil {
		return nil
	}
	return &relayTarget{txreq: d.TransactionRequest, write: d.WriteRequest, to: p.target(), transport: p.transport,
		retarget: func(u sip.Uri) { p.remote.Store(&u) }}
}

// retargetFrom applies a target refresh: m (a re-INVITE or UPDATE from the
// leg, or the leg's 2xx to ours) carries the leg's new Contact.
func (t *relayTarget) retargetFrom(m interface{ Contact() *sip.ContactHeader }) {
	if t == nil || t.retarget == nil {
		return
	}
	if c := m.Contact(); c != nil && c.Address.Host != "" {
		t.retarget(*c.Address.Clone())
	}
}

// legRelay is leg l itself (not the other one) as a relay target, for a
// target refresh by a request received on l (loop only).
func (s *session) legRelay(l leg) *relayTarget {
	if l == callerLeg {
		return s.callerRelay()
	}
	if s.pbx == nil {
		return nil
	}
	return s.pbx.relay()
}

// retargetLeg applies the target refresh of a request received on leg l
// and answered 2xx (a helper goroutine, not the loop).
func (s *session) retargetLeg(l leg, req *sip.Request) {
	if req.Contact() == nil {
		return
	}
	var t *relayTarget
	s.do(func() { t = s.legRelay(l) })
	t.retargetFrom(req)
}

// send sends req on the leg and returns its final response. The
// transaction of a re-INVITE answered 2xx is returned open (Timer M, RFC
// 6026): ackInvite ACKs each retransmission of that 2xx on it. Any other
// transaction is ended here.
func (t *relayTarget) send(ctx context.Context, req *sip.Request) (*sip.Response, sip.ClientTransaction, error) {
	tx, err := t.txreq(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if req.IsInvite() && res.IsSuccess() {
				t.retargetFrom(res)
				return res, tx, nil
			}
			if res.IsSuccess() && req.Method == sip.UPDATE {
				t.retargetFrom(res)
			}
			tx.Terminate()
			return res, nil, nil
		case <-tx.Done():
			return nil, nil, tx.Err()
		case <-ctx.Done():
			tx.Terminate()
			return nil, nil, ctx.Err()
		}
	}
}

// ackInvite ACKs the 2xx of a re-INVITE sent on the leg (tx, from send),
// with body as the answer when there is one, and again each time the leg
// retransmits that 2xx because the ACK was lost (RFC 3261 §13.2.2.4),
// until the transaction ends (Timer M, 64*T1).
func (s *session) ackInvite(t *relayTarget, tx sip.ClientTransaction, body []byte, ct string) error {
	a := sip.NewRequest(sip.ACK, t.to)
	if len(body) > 0 {
		a.AppendHeader(sip.NewHeader("Content-Type", ct))
		a.SetBody(body)
	}
	s.route(a, t.transport, t.source)
	if err := t.write(a); err != nil {
		if tx != nil {
			tx.Terminate()
		}
		return err
	}
	if tx == nil {
		return nil
	}
	// The ACK as sent (dialog headers, CSeq, Via, destination) is
	// replayed as it is: rebuilding it would take the dialog's CSeq as it
	// is then.
	sent := a.Clone()
	tx.OnRetransmission(func(r *sip.Response) {
		if !r.IsSuccess() {
			return
		}
		if err := s.g.client.WriteRequest(sent.Clone()); err != nil {
			s.log.Debug("ACK of a resent 2xx not sent", "err", err)
			return
		}
		s.log.Debug("resent 2xx ACKed again", "cseq", r.CSeq().SeqNo)
	})
	return nil
}
