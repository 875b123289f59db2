package console

import "net/http"

// list serves GET /console/lists/{blacklist|whitelist}.
func (s *Server) list(w http.ResponseWriter, r *http.Request, c *visit) {
	s.renderError(w, r, c, http.StatusNotFound, "")
}

// importWhitelist serves POST /console/lists/whitelist/import.
func (s *Server) importWhitelist(w http.ResponseWriter, r *http.Request, c *visit) {
	s.renderError(w, r, c, http.StatusNotFound, "")
}
