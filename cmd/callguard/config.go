package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/caarlos0/env/v11"
)

// envPrefix is the prefix of every configuration variable.
const envPrefix = "GUARD_"

// Config is the whole configuration of a guard node, read from GUARD_*
// environment variables. Each field's `desc` tag is what `callguard config`
// and the README say about it; `secret:"true"` fields are masked whenever
// they are printed or logged.
type Config struct {
	// DataDir holds the embedded event store. Ignored when EventStoreURL is set.
	DataDir string `env:"DATA_DIR" envDefault:"./data" desc:"directory of the embedded event store (used when GUARD_EVENTSTORE_URL is empty)"`
	// EventStoreURL selects the EventStoreDB backend when not empty.
	EventStoreURL string `env:"EVENTSTORE_URL" secret:"true" desc:"EventStoreDB connection string, e.g. esdb://localhost:2113?tls=false; empty means the embedded store"`
	// NodeName is written into the metadata of every event this node appends.
	NodeName string `env:"NODE_NAME" desc:"name of this guard node in event metadata (default: the host name)"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info" desc:"log level: debug, info, warn or error"`
	// LogFormat is text (for people) or json (for log shippers).
	LogFormat string `env:"LOG_FORMAT" envDefault:"text" desc:"log format: text or json"`
}

// loadConfig reads the configuration from environ (os.Environ() form) and
// validates it.
func loadConfig(environ []string) (Config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Prefix: envPrefix, Environment: vars})
	if err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	if cfg.NodeName == "" {
		if host, err := os.Hostname(); err == nil {
			cfg.NodeName = host
		} else {
			cfg.NodeName = "guard"
		}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

func (c Config) validate() error {
	var errs []error
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("%sLOG_LEVEL is %q, want debug, info, warn or error", envPrefix, c.LogLevel))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("%sLOG_FORMAT is %q, want text or json", envPrefix, c.LogFormat))
	}
	if c.EventStoreURL == "" && c.DataDir == "" {
		errs = append(errs, fmt.Errorf("%sDATA_DIR is empty and %sEVENTSTORE_URL is not set: the store needs one of them", envPrefix, envPrefix))
	}
	if c.EventStoreURL != "" {
		if u, err := url.Parse(c.EventStoreURL); err != nil || (u.Scheme != "esdb" && u.Scheme != "esdb+discover") {
			errs = append(errs, fmt.Errorf("%sEVENTSTORE_URL must be an esdb:// or esdb+discover:// connection string", envPrefix))
		}
	}
	return errors.Join(errs...)
}

// configVar is one documented configuration variable.
type configVar struct {
	Name, Default, Desc string
	Secret              bool
	field               string
}

// configVars lists every variable of Config in declaration order.
func configVars() []configVar {
	t := reflect.TypeOf(Config{})
	vars := make([]configVar, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" {
			continue
		}
		vars = append(vars, configVar{
			Name: envPrefix + name, Default: f.Tag.Get("envDefault"), Desc: f.Tag.Get("desc"),
			Secret: f.Tag.Get("secret") == "true", field: f.Name,
		})
	}
	return vars
}

// maskSecret hides a secret's value but says whether it is set. Connection
// strings keep their host so an operator can see where the node points.
func maskSecret(v string) string {
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && u.Host != "" {
		if u.User != nil {
			u.User = url.User("***")
		}
		return u.Redacted()
	}
	return "***"
}

// printConfig writes the effective configuration, secrets masked.
func printConfig(w io.Writer, cfg Config) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v := reflect.ValueOf(cfg)
	for _, cv := range configVars() {
		val := fmt.Sprint(v.FieldByName(cv.field).Interface())
		if cv.Secret {
			val = maskSecret(val)
		}
		fmt.Fprintf(tw, "%s\t%s\n", cv.Name, val)
	}
	return tw.Flush()
}

// printConfigMarkdown writes the README's configuration table.
func printConfigMarkdown(w io.Writer) {
	fmt.Fprintln(w, "| Variable | Default | Meaning |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, cv := range configVars() {
		def := cv.Default
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "| `%s` | `%s` | %s |\n", cv.Name, def, cv.Desc)
	}
}

// newLogger builds the process logger from the configuration.
func newLogger(w io.Writer, cfg Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("node", cfg.NodeName)
}
