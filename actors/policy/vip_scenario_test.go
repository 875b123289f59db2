package policy

import (
	"fmt"
	"strings"

	"github.com/callguard/callguard/actors/scripttest"
	"github.com/callguard/callguard/events/schema"
)

// The CRM's answer in scenario scripts:
//
//	call NUMBER ... crm=vip[/SEGMENT]|customer[/SEGMENT]|miss|timeout|error
//	    decide the call with that CRM answer (vip and customer are hits,
//	    VIP or not).
//
// A call decided with a CRM answer prints, after its verdict, the answer
// its CallReceived recorded ("  crm hit vip segment=gold") and, when the
// VIP rule decided, the reason.

func crmOpt(a *scripttest.Command) (*schema.CRMAnswer, error) {
	v, ok := a.Opt("crm")
	if !ok {
		return nil, nil
	}
	kind, segment, _ := strings.Cut(v, "/")
	switch kind {
	case "vip":
		return &schema.CRMAnswer{Status: schema.CRMHit, VIP: true, Segment: segment}, nil
	case "customer":
		return &schema.CRMAnswer{Status: schema.CRMHit, Segment: segment}, nil
	case "miss", "timeout", "error":
		return &schema.CRMAnswer{Status: schema.CRMStatus(kind)}, nil
	}
	return nil, fmt.Errorf("crm=%q: want vip[/SEGMENT], customer[/SEGMENT], miss, timeout or error", v)
}

func fmtCRM(d Decision) string {
	var lines []string
	for _, rec := range d.Records {
		e, ok := rec.Payload.(schema.CallReceived)
		if !ok || e.CRM == nil {
			continue
		}
		line := "  crm " + string(e.CRM.Status)
		if e.CRM.VIP {
			line += " vip"
		}
		if e.CRM.Segment != "" {
			line += " segment=" + e.CRM.Segment
		}
		lines = append(lines, line)
		if e.Rule == schema.RuleVIP {
			lines = append(lines, "  reason: "+e.Reason)
		}
	}
	return strings.Join(lines, "\n")
}
