package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/events/schema"
)

// settingsFlags are the policy settings a line or a schedule overrides;
// only the flags given are sent.
type settingsFlags struct {
	fs                        *flag.FlagSet
	hour, day, level          *int
	attackRate                *float64
	blockFor, anonymous, till *string
}

func addSettingsFlags(fs *flag.FlagSet) *settingsFlags {
	return &settingsFlags{
		fs:         fs,
		hour:       fs.Int("limit-hour", 0, "calls in the last hour above which a caller is blocked (0 disables)"),
		day:        fs.Int("limit-day", 0, "calls in the last day above which a caller is blocked (0 disables)"),
		level:      fs.Int("limit-level", 0, "block level a broken limit sets (1-5 challenge, 6-9 reject)"),
		blockFor:   fs.String("block-for", "", "how long an automatic block lasts (2h, 30m)"),
		anonymous:  fs.String("anonymous", "", "verdict for callers without a number: pass, challenge or reject"),
		attackRate: fs.Float64("attack-rate", 0, "new callers a second above which the line is under attack (0 disables)"),
		till:       fs.String("until", "", "when the override ends by itself: a duration (8h), a date in GUARD_TIMEZONE or an RFC 3339 time"),
	}
}

func (s *settingsFlags) body() adminapi.SettingsBody {
	var b adminapi.SettingsBody
	s.fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "limit-hour":
			b.LimitHour = s.hour
		case "limit-day":
			b.LimitDay = s.day
		case "limit-level":
			b.LimitLevel = s.level
		case "block-for":
			b.BlockFor = *s.blockFor
		case "anonymous":
			v := schema.Verdict(*s.anonymous)
			b.Anonymous = &v
		case "attack-rate":
			b.AttackRate = s.attackRate
		}
	})
	return b
}

func (s *settingsFlags) until(environ []string) (string, error) {
	t, err := parseUntil(*s.till, environ)
	if err != nil || t.IsZero() {
		return "", err
	}
	return t.UTC().Format(time.RFC3339), nil
}

// runLine: callguard line set|clear|show — a called line's own settings.
func runLine(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	const use = "usage: callguard line set LINE [--limit-hour N] [--limit-day N] [--limit-level N] [--block-for D] [--anonymous V] [--attack-rate R] [--until T] --reason WHY | clear LINE --reason WHY | list"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, use+"\n`callguard line VERB -h` lists a verb's flags.")
		return errHelp
	}
	if len(args) == 0 || (args[0] != "set" && args[0] != "clear" && args[0] != "list") {
		return usageError{use}
	}
	verb := args[0]
	f := newAdminFlags("line "+verb, "line "+verb+map[string]string{
		"set": " LINE [settings] --reason WHY", "clear": " LINE --reason WHY", "list": "",
	}[verb], stderr)
	var sf *settingsFlags
	if verb == "set" {
		sf = addSettingsFlags(f.fs)
	}
	want := 1
	if verb == "list" {
		want = 0
	}
	pos, err := f.parse(args[1:], want)
	if err != nil {
		return err
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	var res adminapi.SettingsResult
	switch verb {
	case "list":
		v, err := c.LineSettings(ctx)
		if err != nil {
			return err
		}
		if *f.asJSON {
			return json.NewEncoder(stdout).Encode(v)
		}
		return printSettings(stdout, v)
	case "set":
		body := sf.body()
		until, err := sf.until(environ)
		if err != nil {
			return err
		}
		res, err = c.SetLineSettings(ctx, pos[0], adminapi.LineSettingsRequest{SettingsBody: body, By: *f.by, Reason: *f.reason, Until: until, IdempotencyKey: *f.key})
		if err != nil {
			return err
		}
	default:
		res, err = c.ClearLineSettings(ctx, pos[0], adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
		if err != nil {
			return err
		}
	}
	return printSettingsResult(stdout, *f.asJSON, "line "+res.Line, res)
}

// runSchedule: callguard schedule add|remove — settings in force in a
// weekly window of GUARD_TIMEZONE.
func runSchedule(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	const use = "usage: callguard schedule add NAME --from HH:MM --to HH:MM [--days mon-fri] [--line LINE] [settings] --reason WHY | remove NAME --reason WHY"
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		fmt.Fprintln(stderr, use+"\n`callguard schedule VERB -h` lists a verb's flags.")
		return errHelp
	}
	if len(args) == 0 || (args[0] != "add" && args[0] != "remove") {
		return usageError{use}
	}
	verb := args[0]
	f := newAdminFlags("schedule "+verb, "schedule "+verb+map[string]string{
		"add": " NAME --from HH:MM --to HH:MM [--days mon-fri] [--line LINE] [settings] --reason WHY", "remove": " NAME --reason WHY",
	}[verb], stderr)
	var (
		sf                   *settingsFlags
		from, to, days, line *string
	)
	if verb == "add" {
		from = f.fs.String("from", "", "start of the window, HH:MM in GUARD_TIMEZONE")
		to = f.fs.String("to", "", "end of the window (exclusive), HH:MM; not after --from: it crosses midnight")
		days = f.fs.String("days", "", "days the window starts on: mon-fri, sat,sun (default every day)")
		line = f.fs.String("line", "", "only calls to this called number (default every line)")
		sf = addSettingsFlags(f.fs)
	}
	pos, err := f.parse(args[1:], 1)
	if err != nil {
		return err
	}
	if verb == "add" {
		if *from == "" || *to == "" {
			return usageError{"schedule add: --from and --to are required (HH:MM)"}
		}
		if _, err := schema.ParseWindow(*days, *from, *to); err != nil {
			return usageError{"schedule add: " + strings.TrimPrefix(err.Error(), schema.ErrSettings.Error()+": ")}
		}
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	var res adminapi.SettingsResult
	if verb == "add" {
		until, err := sf.until(environ)
		if err != nil {
			return err
		}
		res, err = c.AddSchedule(ctx, adminapi.ScheduleRequest{Name: pos[0], Days: *days, From: *from, To: *to, Line: *line,
			SettingsBody: sf.body(), By: *f.by, Reason: *f.reason, Until: until, IdempotencyKey: *f.key})
		if err != nil {
			return err
		}
	} else {
		res, err = c.RemoveSchedule(ctx, pos[0], adminapi.RemoveRequest{By: *f.by, Reason: *f.reason, IdempotencyKey: *f.key})
		if err != nil {
			return err
		}
	}
	return printSettingsResult(stdout, *f.asJSON, "schedule "+res.Schedule, res)
}

// runSchedules: callguard schedules — the schedules and whether each is
// in force now.
func runSchedules(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	f := newAdminFlags("schedules", "schedules [--json]", stderr)
	if _, err := f.parse(args, 0); err != nil {
		return err
	}
	c, err := cliClient(environ)
	if err != nil {
		return err
	}
	v, err := c.Schedules(ctx)
	if err != nil {
		return err
	}
	if *f.asJSON {
		return json.NewEncoder(stdout).Encode(v)
	}
	return printSettings(stdout, v)
}

func printSettingsResult(stdout io.Writer, asJSON bool, what string, res adminapi.SettingsResult) error {
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	if res.Repeated {
		_, err := fmt.Fprintf(stdout, "%s: repeated: already applied, nothing new written\n", what)
		return err
	}
	_, err := fmt.Fprintf(stdout, "%s: %v (in force on every node as it folds the rules stream, revision %d)\n", what, res.Events, res.Revision)
	return err
}

func printSettings(w io.Writer, v adminapi.SettingsView) error {
	var b strings.Builder
	for _, l := range v.Lines {
		fmt.Fprintf(&b, "line %s: %s (set %s by %s: %s", l.Line, l.Settings, l.Since.Format(time.RFC3339), l.By, l.Why)
		if !l.Until.IsZero() {
			fmt.Fprintf(&b, "; until %s", l.Until.Format(time.RFC3339))
		}
		if l.Expired {
			b.WriteString("; expired")
		}
		b.WriteString(")\n")
	}
	for _, s := range v.Schedules {
		state := "not now"
		if s.Active {
			state = "IN FORCE"
		}
		line := "every line"
		if s.Line != "" {
			line = "line " + s.Line
		}
		fmt.Fprintf(&b, "schedule %s: %s %s, %s: %s [%s] (added %s by %s: %s", s.Name, s.Window, s.Zone, line, s.Settings, state,
			s.Since.Format(time.RFC3339), s.By, s.Why)
		if !s.Until.IsZero() {
			fmt.Fprintf(&b, "; until %s", s.Until.Format(time.RFC3339))
		}
		b.WriteString(")\n")
	}
	if len(v.Lines) == 0 && len(v.Schedules) == 0 {
		b.WriteString("none\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// trySettingLine is the replay setting of a tried line's settings.
const trySettingLine = "try-line"

// triedLineSettings reads a replay's hypothetical line settings:
// LINE:limit-hour=N,limit-day=N,limit-level=N,block-for=D,anonymous=V.
func triedLineSettings(n *phone.Normalizer, s string) ([]schema.Override, error) {
	if s == "" {
		return nil, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("--%s %q: %s; want LINE:SETTING=VALUE,..., such as +78005553535:limit-hour=2", trySettingLine, s, why)
	}
	line, list, ok := strings.Cut(s, ":")
	num := n.Normalize(strings.TrimSpace(line))
	if !ok || num.Anonymous() {
		return nil, bad("no line")
	}
	var set schema.Settings
	for _, kv := range strings.Split(list, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return nil, bad(fmt.Sprintf("%q is not SETTING=VALUE", kv))
		}
		var err error
		switch k {
		case "limit-hour", "limit-day", "limit-level":
			var i int
			if i, err = strconv.Atoi(v); err == nil {
				switch k {
				case "limit-hour":
					set.LimitHour = &i
				case "limit-day":
					set.LimitDay = &i
				default:
					set.LimitLevel = &i
				}
			}
		case "block-for":
			var d time.Duration
			if d, err = time.ParseDuration(v); err == nil {
				set.BlockFor = &d
			}
		case "anonymous":
			vd := schema.Verdict(v)
			set.Anonymous = &vd
		default:
			return nil, bad(fmt.Sprintf("no setting %q", k))
		}
		if err != nil {
			return nil, bad(fmt.Sprintf("%s: %v", k, err))
		}
	}
	if err := set.Check(); err != nil {
		return nil, bad(strings.TrimPrefix(err.Error(), schema.ErrSettings.Error()+": "))
	}
	return []schema.Override{{Source: schema.OverrideLine, Line: num.Key, Settings: set, By: "replay", Why: "tried"}}, nil
}
