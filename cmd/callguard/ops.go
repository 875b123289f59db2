package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"time"

	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/actors/policy/audit"
	"github.com/callguard/callguard/actors/policy/replay"
	"github.com/callguard/callguard/events"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/projections/runner"
)

// runAudit prints a caller's whole history as a timeline: every call with
// its counts and verdict, every block with the rule and the calls that made
// it fire, every challenge, admin command and expiry.
func runAudit(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the timeline as JSON")
	tz := fs.String("tz", "", "time zone of the printed times (IANA name, e.g. Europe/Moscow; default GUARD_TIMEZONE)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callguard audit NUMBER [--json] [--tz ZONE]")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{"audit takes one number"}
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	loc := location(cfg)
	if *tz != "" {
		if loc, err = time.LoadLocation(*tz); err != nil {
			return usageError{fmt.Sprintf("--tz %q: %v", *tz, err)}
		}
	}
	key, err := callerKey(cfg, pos[0])
	if err != nil {
		return err
	}
	tl, err := withStore(ctx, cfg, stderr, func(store events.Store) (audit.Timeline, error) {
		return audit.Build(ctx, store, key)
	}, func(c *adminClient) (audit.Timeline, error) {
		return c.history(ctx, key)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(tl)
	}
	return tl.WriteText(stdout, loc)
}

// runReplay re-decides the whole log under other policy settings and says
// what would change. It only reads the store.
func runReplay(ctx context.Context, args []string, environ []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	settings := cfg.Policy // flags start from the configured policy
	fs := newPolicyFlagSet(&settings)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	tryBlock := fs.String(trySettingBlock, "", "try a range block before it is enforced: PREFIX:LEVEL or FROM-TO:LEVEL (+7999123:7)")
	tryWhitelist := fs.String(trySettingWhitelist, "", "try a whitelist range before it is enforced: PREFIX or FROM-TO")
	tryLine := fs.String(trySettingLine, "", "try a called line's settings before they are set: LINE:limit-hour=N,limit-day=N,... (+78005553535:limit-hour=2)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: callguard replay [--json] [--try-block RANGE:LEVEL] [--try-whitelist RANGE] [--try-line LINE:SETTINGS] [policy flags]\n\nRe-decides every recorded call under the given settings (default: the configured ones) and prints what would change. Policy flags:")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		fs.Usage()
		return usageError{"replay takes no arguments besides flags"}
	}
	if err := settings.Validate(); err != nil {
		return usageError{namePolicySettings(err, func(s policySetting) string { return "--" + s.Flag }).Error()}
	}
	changed := map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "json" {
			changed[f.Name] = f.Value.String()
		}
	})
	numbers, err := phone.New(cfg.Region)
	if err != nil {
		return fmt.Errorf("%sREGION: %w", envPrefix, err)
	}
	tried, err := triedRules(numbers, *tryBlock, *tryWhitelist)
	if err != nil {
		return usageError{err.Error()}
	}
	triedLine, err := triedLineSettings(numbers, *tryLine)
	if err != nil {
		return usageError{err.Error()}
	}
	now := time.Now()
	rep, err := withStore(ctx, cfg, stderr, func(store events.Store) (replay.Report, error) {
		return replay.Run(ctx, store, settings, replay.AsOf(now), replay.Try(tried...), replay.TryOverrides(triedLine...))
	}, func(c *adminClient) (replay.Report, error) {
		return c.replay(ctx, changed)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout, location(cfg))
}

func callerKey(cfg Config, number string) (string, error) {
	numbers, err := phone.New(cfg.Region)
	if err != nil {
		return "", fmt.Errorf("%sREGION: %w", envPrefix, err)
	}
	n := numbers.Normalize(number)
	if n.Kind == phone.KindUnparsable {
		return "", usageError{fmt.Sprintf("%q is not a phone number", number)}
	}
	return n.Key, nil
}

// numberPrefix reads a --prefix like a number (phone.Prefix), so that
// "8999123" finds what "+7999123" finds.
func numberPrefix(cfg Config, prefix string) (string, error) {
	numbers, err := phone.New(cfg.Region)
	if err != nil {
		return "", fmt.Errorf("%sREGION: %w", envPrefix, err)
	}
	p, err := numbers.Prefix(prefix)
	if err != nil {
		return "", usageError{"--prefix " + err.Error()}
	}
	return p, nil
}

// policySetting is one setting of policy.Config as its users name it:
// the environment variable, the command-line flag of replay, the key of
// the admin API's replay settings. The list is derived from policy.Config's
// env and desc tags (configVars), the one place a setting is declared, so
// a new field is a variable, a flag and a replay setting at once, with one
// help text.
type policySetting struct {
	configVar        // the variable: Name (GUARD_LIMIT_HOUR), Default, Desc
	Flag      string // the flag and replay setting: limit-hour
	Field     string // the policy.Config field, as policy.SettingError names it
}

// policySettings lists the settings of policy.Config in declaration order.
func policySettings() []policySetting {
	cfgType, policyType := reflect.TypeFor[Config](), reflect.TypeFor[policy.Config]()
	var out []policySetting
	for _, v := range configVars() {
		parent := v.index[:len(v.index)-1]
		if len(parent) == 0 || cfgType.FieldByIndex(parent).Type != policyType {
			continue
		}
		field := policyType.Field(v.index[len(v.index)-1]).Name
		out = append(out, policySetting{configVar: v, Flag: policy.SettingName(field), Field: field})
	}
	return out
}

// namePolicySettings rewords a policy.Config validation error with each
// setting named by name; it keeps wrapping policy.ErrConfig.
func namePolicySettings(err error, name func(policySetting) string) error {
	var se *policy.SettingError
	if !errors.As(err, &se) {
		return err
	}
	byField := func(field string) string {
		for _, s := range policySettings() {
			if s.Field == field {
				return name(s)
			}
		}
		return field
	}
	return fmt.Errorf("%w: %s", policy.ErrConfig, se.Message(byField))
}

// newPolicyFlagSet returns a flag set with a flag for every policy
// setting of c (policySettings), each setting the field in place.
func newPolicyFlagSet(c *policy.Config) *flag.FlagSet {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	v := reflect.ValueOf(c).Elem()
	for _, s := range policySettings() {
		fs.Var(fieldValue{v.Field(s.index[len(s.index)-1])}, s.Flag, s.Desc)
	}
	return fs
}

// fieldValue is a flag.Value over one field of policy.Config.
type fieldValue struct{ v reflect.Value }

func (f fieldValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	return fmt.Sprint(f.v.Interface())
}

func (f fieldValue) Set(s string) error { return setField(f.v, s) }

// IsBoolFlag lets a bool setting be given as --count-abandoned alone.
func (f fieldValue) IsBoolFlag() bool { return f.v.IsValid() && f.v.Kind() == reflect.Bool }

func setField(field reflect.Value, s string) error {
	switch {
	case field.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		field.SetInt(int64(d))
	case field.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return err
		}
		field.SetInt(int64(n))
	case field.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		field.SetBool(b)
	case field.Kind() == reflect.String:
		field.SetString(s)
	default:
		return fmt.Errorf("unsupported setting type %s", field.Type())
	}
	return nil
}

// warnStale tells the CLI's user that an answer of the guard's read side
// is not current.
func warnStale(w io.Writer, fr runner.Freshness) {
	why := fr.Reason
	if why == "" {
		why = "see callguard projections"
	}
	fmt.Fprintf(w, "callguard: warning: this answer comes from a projection that is %s: %s\n", fr.Status, why)
}
