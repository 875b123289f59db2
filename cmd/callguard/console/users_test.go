package console

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestUsersPage(t *testing.T) {
	var ua *fakeUserAdmin
	r := newRig(t, func(d *Deps) { fullDeps(d); ua = d.UserAdmin.(*fakeUserAdmin) })
	op := r.browser()
	op.signIn("oleg")
	if p := op.get("/console/users"); p.status != http.StatusForbidden {
		t.Errorf("operator GET users: %d, want 403", p.status)
	}
	if byID(parse(t, op.get("/console/").body), "whoami") == nil {
		t.Fatal("no page")
	}
	b := r.browser()
	b.signIn("anna")
	p := b.get("/console/users")
	doc := parse(t, p.body)
	checkPage(t, "users", p.body, "en", "users")
	if byID(doc, "user-list") == nil || byID(doc, "user-form") == nil {
		t.Fatalf("no user list or form:\n%s", p.body)
	}
	tok := formCSRF(t, p.body, "user-form")
	post := func(path string, form url.Values) page {
		t.Helper()
		form.Set("csrf", tok)
		p := b.post(path, form)
		if p.status != http.StatusSeeOther || p.loc != "/console/users" {
			t.Fatalf("POST %s: %d to %q", path, p.status, p.loc)
		}
		return b.get(p.loc)
	}
	if p := post("/console/users", url.Values{"name": {"ivan"}, "role": {"operator"}, "password": {"short"}}); !strings.Contains(alertText(t, p.body), "shorter than 12") {
		t.Errorf("weak password: %q", alertText(t, p.body))
	}
	post("/console/users", url.Values{"name": {"ivan"}, "role": {"operator"}, "password": {"ivan-secret-pw"}})
	iv := r.browser()
	iv.signIn("ivan")
	post("/console/users/ivan/role", url.Values{"role": {"viewer"}})
	post("/console/users/ivan/disable", url.Values{})
	if p := iv.get("/console/"); p.status != http.StatusSeeOther {
		t.Errorf("disabled user still in: %d", p.status)
	}
	if p := post("/console/users/anna/disable", url.Values{}); alertText(t, p.body) == "" {
		t.Error("an admin disabled themselves")
	}
	want := "create ivan operator by anna|role ivan viewer by anna|disable ivan by anna"
	if got := strings.Join(ua.log, "|"); got != want {
		t.Errorf("commands %q, want %q", got, want)
	}
	if strings.Contains(r.log.String(), "ivan-secret-pw") {
		t.Error("a password is in the log")
	}
}
