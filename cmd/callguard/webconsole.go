package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/callguard/callguard/actors/users"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/console"
	"github.com/callguard/callguard/projections/metrics"
	"github.com/callguard/callguard/projections/readside"
	dto "github.com/prometheus/client_model/go"
)

// The web console's composition: the same parts the admin API gets (see
// startAdmin), the node's console users' book (g.users), and the node's
// live figures.

// consoleUsers adapts the users' book to the console.
type consoleUsers struct{ book *users.Book }

func (u consoleUsers) Authenticate(ctx context.Context, name, password string) (console.Account, error) {
	a, err := u.book.Authenticate(ctx, name, password)
	if errors.Is(err, users.ErrBadCredentials) {
		return console.Account{}, fmt.Errorf("%w: %w", console.ErrBadCredentials, err)
	}
	if err != nil {
		return console.Account{}, err
	}
	return console.Account{Name: a.Name, Role: string(a.Role)}, nil
}

func (u consoleUsers) Account(ctx context.Context, name string) (console.Account, bool) {
	a, ok := u.book.Account(ctx, name)
	if !ok {
		return console.Account{}, false
	}
	return console.Account{Name: a.Name, Role: string(a.Role)}, true
}

// consoleUserAdmin adapts the users' writer and book to the console's
// Users page: the same commands as /v1/users, by the signed-in admin.
type consoleUserAdmin struct {
	writer *users.Writer
	book   *users.Book
}

func (u consoleUserAdmin) List(context.Context) ([]console.UserInfo, error) {
	var out []console.UserInfo
	for _, x := range u.book.List() {
		out = append(out, console.UserInfo{Name: x.Name, Role: string(x.Role), Disabled: x.Disabled, Since: x.Created})
	}
	return out, nil
}

func (u consoleUserAdmin) Create(ctx context.Context, name, role, password, by string) error {
	_, err := u.writer.Create(ctx, name, users.Role(role), password, users.Command{By: by})
	return err
}

func (u consoleUserAdmin) SetRole(ctx context.Context, name, role, by string) error {
	_, err := u.writer.SetRole(ctx, name, users.Role(role), users.Command{By: by})
	return err
}

func (u consoleUserAdmin) SetPassword(ctx context.Context, name, password, by string) error {
	_, err := u.writer.SetPassword(ctx, name, password, users.Command{By: by})
	return err
}

func (u consoleUserAdmin) Disable(ctx context.Context, name, by string) error {
	_, err := u.writer.Disable(ctx, name, users.Command{By: by})
	return err
}

func (u consoleUserAdmin) Enable(ctx context.Context, name, by string) error {
	_, err := u.writer.Enable(ctx, name, users.Command{By: by})
	return err
}

// consoleHealth gives the Today page the node's live figures: the calls
// and challenges in progress as its metrics export them, the store as the
// readiness check sees it, and the lines this node has served.
func consoleHealth(g *guard, health *metrics.Health) console.Health {
	return console.HealthFunc(func(ctx context.Context) (console.Live, error) {
		var live console.Live
		families, err := g.metrics.Registry().Gather()
		if err != nil {
			return live, fmt.Errorf("read the node's metrics: %w", err)
		}
		live.ActiveCalls = int(gauge(families, metrics.Namespace+"_calls_in_progress"))
		live.Challenges = int(gauge(families, metrics.Namespace+"_challenges_active"))
		rd := health.Check(ctx)
		live.StoreOK, live.StoreDetail = rd.Store.Ready, rd.Store.Error
		for line := range g.local.Lines() {
			live.Lines = append(live.Lines, line)
		}
		slices.Sort(live.Lines)
		return live, nil
	})
}

// gauge is the value of the gauge name without labels, 0 when absent.
func gauge(families []*dto.MetricFamily, name string) float64 {
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// newConsole builds the console over the parts the admin API has.
func newConsole(cfg Config, g *guard, rs *readside.ReadSide, parts edgeParts, health *metrics.Health) (*console.Server, error) {
	ccfg := cfg.Console
	// The session cookie is Secure when the console is served over TLS:
	// the admin API's certificate serves both (see serveConsole).
	ccfg.TLS = cfg.Admin.TLSCert != ""
	// Its pages wait for the read side as the admin API's reads do.
	ccfg.ReadWait = cfg.Admin.ReadWait
	return console.New(ccfg, console.Deps{
		Users:       consoleUsers{g.users},
		UserAdmin:   consoleUserAdmin{writer: g.userWriter(cfg), book: g.users},
		Callers:     g.callers,
		Normalizer:  g.numbers,
		History:     parts.history,
		Replay:      parts.replay,
		Lists:       rs.Lists,
		Import:      parts.importer,
		Reports:     rs.Reports,
		Profiles:    rs.Profiles,
		Projections: rs.Runner,
		Lines:       g.lines,
		Health:      consoleHealth(g, health),
		Policy:      cfg.Policy,
		Zone:        location(cfg),
		Logger:      g.log.With("component", "console"),
	})
}

// serveConsole serves the console on GUARD_CONSOLE_LISTEN until ctx ends,
// over TLS with the admin API's certificate when it has one.
func serveConsole(ctx context.Context, cfg Config, srv *console.Server) (<-chan error, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Console.Listen)
	if err != nil {
		return nil, fmt.Errorf("console: listen on %s: %w", cfg.Console.Listen, err)
	}
	if cfg.Admin.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Admin.TLSCert, cfg.Admin.TLSKey)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("console: TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	return done, nil
}

// firstOf reports on one channel for two servers that stop with ctx: an
// error from one that stops by itself at once (serve then stops the
// rest), or, once ctx has ended, what both said.
func firstOf(ctx context.Context, a, b <-chan error) <-chan error {
	done := make(chan error, 1)
	go func() {
		var first error
		other := b
		select {
		case first = <-a:
		case first = <-b:
			other = a
		}
		if ctx.Err() == nil {
			done <- first
			return
		}
		done <- errors.Join(first, <-other)
	}()
	return done
}

// edgeParts are what the admin API and the console both use, built once.
type edgeParts struct {
	history  adminapi.History
	replay   adminapi.Replayer
	importer adminapi.WhitelistImporter
}
