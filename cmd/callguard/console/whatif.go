package console

import "net/http"

// whatif serves GET /console/whatif.
func (s *Server) whatif(w http.ResponseWriter, r *http.Request, c *visit) {
	s.renderError(w, r, c, http.StatusNotFound, "")
}
