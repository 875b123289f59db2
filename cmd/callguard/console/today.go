package console

import "net/http"

// today serves GET /console/: the line at a glance.
func (s *Server) today(w http.ResponseWriter, r *http.Request, c *visit) {
	s.render(w, r, c, http.StatusOK, "today", nil)
}
