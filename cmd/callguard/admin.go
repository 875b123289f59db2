package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/audit"
	"github.com/callguard/callguard/actors/policy/replay"
	"github.com/callguard/callguard/actors/rules"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/importer"
	"github.com/callguard/callguard/events/schema"
	"github.com/callguard/callguard/projections/metrics"
	"github.com/callguard/callguard/projections/readside"
)

// tokenFile is where a guard started without GUARD_ADMIN_TOKEN keeps the
// token it drew, readable by the operator's account only; the CLI on the
// same machine reads it from there.
const tokenFile = "admin.token"

// adminToken returns the configured token, or the one kept in the data
// directory, drawing and saving a new one on first start. The token itself
// is never logged.
func adminToken(cfg Config, create bool) (token, source string, err error) {
	if cfg.Admin.Token != "" {
		return cfg.Admin.Token, envPrefix + "ADMIN_TOKEN", nil
	}
	path := filepath.Join(cfg.DataDir, tokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) || !create {
		return "", "", fmt.Errorf("no admin token: set %sADMIN_TOKEN or start the guard once to create %s: %w", envPrefix, path, err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("draw an admin token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", cfg.DataDir, err)
	}
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("save the admin token: %w", err)
	}
	return token, path, nil
}

// startAdmin serves the admin API of g, and the web console beside it or
// on its own listener, until ctx ends. It returns once they are
// listening, or with the reason they cannot.
func startAdmin(ctx context.Context, cfg Config, g *guard, rs *readside.ReadSide, health *metrics.Health) (<-chan error, error) {
	acfg := cfg.Admin
	if host, _, err := net.SplitHostPort(acfg.Listen); err == nil && adminapi.IsLoopback(host) {
		// On loopback a missing token is drawn and kept for the local CLI;
		// beyond loopback the operator must choose one (adminapi refuses).
		token, source, err := adminToken(cfg, true)
		if err != nil {
			return nil, err
		}
		acfg.Token = token
		g.log.Info("admin API token", "from", source)
	}
	parts := edgeParts{
		history: adminapi.HistoryFunc(func(ctx context.Context, key string) (any, error) {
			return audit.Build(ctx, g.store, key)
		}),
		replay: adminapi.ReplayFunc(func(ctx context.Context, settings map[string]string) (any, error) {
			tried, err := triedRules(g.numbers, settings[trySettingBlock], settings[trySettingWhitelist])
			if err != nil {
				return nil, fmt.Errorf("%w: %v", adminapi.ErrSettings, err)
			}
			triedLine, err := triedLineSettings(g.numbers, settings[trySettingLine])
			if err != nil {
				return nil, fmt.Errorf("%w: %v", adminapi.ErrSettings, err)
			}
			delete(settings, trySettingLine)
			delete(settings, trySettingBlock)
			delete(settings, trySettingWhitelist)
			pc, err := policyWith(cfg.Policy, settings)
			if err != nil {
				// Both wrapped: the console says which setting in the
				// page's language.
				return nil, fmt.Errorf("%w: %w", adminapi.ErrSettings, err)
			}
			return replay.Run(ctx, g.store, pc, replay.AsOf(time.Now()), replay.Try(tried...), replay.TryOverrides(triedLine...))
		}),
		importer: importer.New(g.callers, g.numbers, time.Now, g.log.With("component", "import")).InZone(location(cfg)),
	}
	web, err := newConsole(cfg, g, rs, parts, health)
	if err != nil {
		return nil, err
	}
	var mounted http.Handler
	if cfg.Console.Listen == "" {
		mounted = web.Handler()
	}
	srv, err := adminapi.New(acfg, adminapi.Deps{
		Callers:    g.callers,
		Lines:      g.lines,
		Normalizer: g.numbers,
		History:    parts.history,
		Replay:     parts.replay,
		Lists:      rs.Lists, Import: parts.importer, Reports: rs.Reports, Profiles: rs.Profiles, Projections: rs.Runner,
		Ranges:     &rules.Writer{Store: g.store, Live: g.ranges, Clock: time.Now, Node: cfg.NodeName},
		RangeLists: rs.Lists,
		Settings: adminapi.SettingsDeps{
			Rules: &rules.Writer{Store: g.store, Live: g.ranges, Clock: time.Now, Node: cfg.NodeName},
			Table: g.ranges.Table, Zone: cfg.TimeZone,
			Valid: func(s schema.Settings) error { return cfg.Policy.WithOverrides(s).Validate() },
		},
		Users: adminapi.UsersDeps{Commands: g.userWriter(cfg), List: g.users.List},
		Backup: adminapi.BackupFunc(func(ctx context.Context, w io.Writer) error {
			_, err := writeBackup(ctx, w, g.backupSources(cfg, rs))
			return err
		}),
		Origins: adminapi.OriginWriter{Writer: &rules.Writer{Store: g.store, Live: g.ranges, Clock: time.Now, Node: cfg.NodeName}, Table: g.ranges},
		Console: mounted,
		Logger:  g.log.With("component", "admin"),
	})
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", acfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin API: listen on %s: %w", acfg.Listen, err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	if mounted != nil {
		return done, nil
	}
	webDone, err := serveConsole(ctx, cfg, web)
	if err != nil {
		// The API is up; it stops with ctx, which serve cancels on this
		// error.
		return nil, err
	}
	return firstOf(ctx, done, webDone), nil
}

// policyWith applies replay settings (flag name to value) to base.
func policyWith(base policy.Config, settings map[string]string) (policy.Config, error) {
	fs := newPolicyFlagSet(&base)
	for name, value := range settings {
		if fs.Lookup(name) == nil {
			return base, fmt.Errorf("unknown setting %q", name)
		}
		if err := fs.Set(name, value); err != nil {
			return base, &adminapi.SettingValueError{Setting: name, Value: value, Err: err}
		}
	}
	return base, base.Validate()
}

// adminClient is the CLI's way to a running guard.
type adminClient struct{ *adminapi.Client }

func (c *adminClient) history(ctx context.Context, key string) (audit.Timeline, error) {
	var tl audit.Timeline
	raw, err := c.History(ctx, key)
	if err != nil {
		return tl, err
	}
	return tl, json.Unmarshal(raw, &tl)
}

func (c *adminClient) replay(ctx context.Context, changed map[string]string) (replay.Report, error) {
	var rep replay.Report
	raw, err := c.Replay(ctx, changed)
	if err != nil {
		return rep, err
	}
	return rep, json.Unmarshal(raw, &rep)
}
