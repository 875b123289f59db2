package console

import "net/http"

// reports serves GET /console/reports.
func (s *Server) reports(w http.ResponseWriter, r *http.Request, c *visit) {
	s.renderError(w, r, c, http.StatusNotFound, "")
}
