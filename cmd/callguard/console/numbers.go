package console

import "net/http"

// numbers serves GET /console/numbers?q=: the search.
func (s *Server) numbers(w http.ResponseWriter, r *http.Request, c *visit) {
	s.render(w, r, c, http.StatusOK, "numbers", nil)
}

// caller serves GET /console/numbers/{number}: a caller's standing and
// audit timeline.
func (s *Server) caller(w http.ResponseWriter, r *http.Request, c *visit) {
	s.render(w, r, c, http.StatusOK, "caller", nil)
}

// callerCommand serves POST /console/numbers/{number}/{verb}.
func (s *Server) callerCommand(w http.ResponseWriter, r *http.Request, c *visit) {
	s.renderError(w, r, c, http.StatusNotFound, "")
}
