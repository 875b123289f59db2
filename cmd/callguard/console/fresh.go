package console

import (
	"context"
	"math"
	"slices"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/projections/runner"
)

// fresh makes a page's read of the named projections consistent with the
// writes before it, the way the admin API's reads are: it waits, at most
// Config.ReadWait, until they have caught up with the head of the log
// (adminapi.AwaitRead), so a list shown right after a whitelist or an
// import has it. When the wait runs out the page still shows what it has,
// with a note of how far behind it is.
func (s *Server) fresh(ctx context.Context, c *visit, names ...string) {
	if s.d.Projections == nil {
		return
	}
	fr := adminapi.AwaitRead(ctx, s.d.Projections, s.cfg.ReadWait, names...)
	if fr.Status == runner.ReadCurrent {
		return
	}
	s.d.Logger.Warn("console: read served from a projection that is not current", "projections", names,
		"status", fr.Status, "reason", fr.Reason)
	if fr.Status == runner.ReadFailed {
		c.lagging = translate(c.lang, "common.stale")
		return
	}
	var behind float64
	if sts, err := s.d.Projections.Status(ctx); err == nil {
		for _, st := range sts {
			if slices.Contains(names, st.Name) {
				behind = max(behind, st.LagSeconds)
			}
		}
	}
	// At least a second: the wait ran out, so it is behind, even when the
	// status (read a moment later, or not at all) says it has caught up.
	c.lagging = translate(c.lang, "common.lagging", max(1, int(math.Ceil(behind))))
}
