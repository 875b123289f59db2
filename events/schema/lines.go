package schema

import (
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/callguard/callguard/events"
)

// Line streams: one per called number (the 8-800 line), written by the
// line's grain (actors/line). They hold when the line was under attack:
// while it is, every caller who is not whitelisted or verified recently is
// challenged (RuleAttack). Streams of this kind are small: two events per
// attack period.

// LineStreamPrefix starts the name of every line stream ("line-<number>").
const LineStreamPrefix = "line-"

// LineStream names the stream of the called number line.
func LineStream(line string) string { return LineStreamPrefix + line }

// LineKey returns the line of a line stream, and false when stream is not one.
func LineKey(stream string) (string, bool) {
	if len(stream) <= len(LineStreamPrefix) || stream[:len(LineStreamPrefix)] != LineStreamPrefix {
		return "", false
	}
	return stream[len(LineStreamPrefix):], true
}

// Line stream event type names.
const (
	TypeLineAttackStarted = "LineAttackStarted"
	TypeLineAttackEnded   = "LineAttackEnded"
)

// RuleAttack: the called line was under attack and the caller was neither
// whitelisted nor verified recently (verdicts only).
const RuleAttack Rule = "attack"

// LineAttackEventID is the ID of the event of type typ that the line's
// period beginning at since produced (started or ended): one of each per
// period, whoever retries.
func LineAttackEventID(line, typ string, since time.Time) uuid.UUID {
	return events.DeriveID(LineStreamPrefix, line, typ, strconv.FormatInt(since.UnixNano(), 10))
}

// LineAttackStarted records a line switching to under-attack mode, by the
// detector (Manual false: Rate new callers a second over Window exceeded
// Threshold) or by an admin (Manual, By, Why; Hold keeps it on until an
// admin switches it off).
type LineAttackStarted struct {
	Line string    `json:"line"`
	At   time.Time `json:"at"`
	// Rate is the new or unverified callers a second the line had over
	// Window when the mode started; Threshold the configured rate it
	// exceeded.
	Rate      float64 `json:"rate"`
	Threshold float64 `json:"threshold"`
	WindowMs  int64   `json:"windowMs,omitempty"`
	Manual    bool    `json:"manual,omitempty"`
	Hold      bool    `json:"hold,omitempty"`
	CommandID string  `json:"commandId,omitempty"`
	By        string  `json:"by"`
	Why       string  `json:"why"`
}

// LineAttackEnded records a line leaving under-attack mode: by the
// detector after the rate stayed at or below Threshold for CalmMs, or by
// an admin.
type LineAttackEnded struct {
	Line string `json:"line"`
	// Since is when the period began (its LineAttackStarted's At).
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
	Rate  float64   `json:"rate"`
	// Peak is the highest rate of the period the grain saw (since its
	// activation, when it moved during the period).
	Peak      float64 `json:"peak,omitempty"`
	Threshold float64 `json:"threshold"`
	CalmMs    int64   `json:"calmMs,omitempty"`
	Manual    bool    `json:"manual,omitempty"`
	CommandID string  `json:"commandId,omitempty"`
	By        string  `json:"by"`
	Why       string  `json:"why"`
}

// LineAttack is the line's mode a decision used, recorded in its
// CallReceived so that the audit and replay reproduce the verdict
// without the line's live state.
type LineAttack struct {
	// Since is when the period began.
	Since  time.Time `json:"since"`
	Manual bool      `json:"manual,omitempty"`
}

func (LineAttackStarted) EventType() string { return TypeLineAttackStarted }
func (LineAttackEnded) EventType() string   { return TypeLineAttackEnded }

func (LineAttackStarted) EventVersion() int { return 1 }
func (LineAttackEnded) EventVersion() int   { return 1 }

func linePayloads() []Payload { return []Payload{LineAttackStarted{}, LineAttackEnded{}} }
