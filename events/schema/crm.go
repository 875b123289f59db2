package schema

// The bank's CRM (actors/crm) may be asked about the caller before the
// decision. Its answer is recorded in the call's CallReceived so that the
// audit explains and a replay reproduces a VIP pass without asking the CRM
// again. Only what the decision used is stored: the status, the VIP flag
// and the segment; never the customer's name, which goes to the PBX alone.

// RuleVIP: the CRM marked the caller VIP. A VIP is the CRM's whitelist: the
// call passes, even a manually blocked number and a line under attack.
const RuleVIP Rule = "vip"

// CRMStatus is how a CRM lookup ended.
type CRMStatus string

// CRM lookup results.
const (
	// CRMHit: the CRM knows the number (VIP or not).
	CRMHit CRMStatus = "hit"
	// CRMMiss: the CRM answered that the number is no customer's.
	CRMMiss CRMStatus = "miss"
	// CRMTimeout: no answer within GUARD_CRM_TIMEOUT; decided without it.
	CRMTimeout CRMStatus = "timeout"
	// CRMError: the CRM failed or answered garbage; decided without it.
	CRMError CRMStatus = "error"
	// CRMSkipped: the CRM was not asked, having failed GUARD_CRM_BREAK_AFTER
	// lookups in a row less than GUARD_CRM_BREAK_FOR ago; decided without it.
	CRMSkipped CRMStatus = "skipped"
)

// Valid reports whether s is one of the statuses above.
func (s CRMStatus) Valid() bool {
	switch s {
	case CRMHit, CRMMiss, CRMTimeout, CRMError, CRMSkipped:
		return true
	}
	return false
}

// Failed reports whether the call was decided without the CRM's answer.
func (s CRMStatus) Failed() bool {
	return s == CRMTimeout || s == CRMError || s == CRMSkipped
}

// CRMAnswer is the CRM's answer as a decision used it.
type CRMAnswer struct {
	Status  CRMStatus `json:"status"`
	VIP     bool      `json:"vip,omitempty"`
	Segment string    `json:"segment,omitempty"`
}
