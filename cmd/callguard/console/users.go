package console

import "net/http"

// users serves GET /console/users (admins).
func (s *Server) users(w http.ResponseWriter, r *http.Request, c *visit) {
	s.renderError(w, r, c, http.StatusNotFound, "")
}
