package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/callguard/callguard/actors/call"
	"github.com/callguard/callguard/actors/crm"
	"github.com/callguard/callguard/actors/line"
	"github.com/callguard/callguard/actors/policy"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"github.com/callguard/callguard/cmd/callguard/console"
	"github.com/callguard/callguard/events/phone"
	"github.com/callguard/callguard/projections/reports"
	sipguard "github.com/callguard/callguard/sip/guard"
)

// envPrefix is the prefix of every configuration variable.
const envPrefix = "GUARD_"

// Config is the whole configuration of a guard node, read from GUARD_*
// environment variables. Each field's `desc` tag is what `callguard config`
// and the README say about it; `secret:"true"` fields are masked whenever
// they are printed or logged.
type Config struct {
	// DataDir holds the node's own files: the projections, the admin
	// token, the pending spool, and the embedded event store when neither
	// EventStoreURL nor PostgresURL is set.
	DataDir string `env:"DATA_DIR" envDefault:"./data" desc:"directory of the node's files: the projections, the admin token and pending.db (the calls not yet recorded while the store was down), and the embedded event store when GUARD_EVENTSTORE_URL and GUARD_POSTGRES_URL are empty"`
	// EventStoreURL selects the EventStoreDB backend when not empty.
	EventStoreURL string `env:"EVENTSTORE_URL" secret:"true" desc:"EventStoreDB connection string, e.g. esdb://localhost:2113?tls=false; empty means the embedded store (or PostgreSQL)"`
	// PostgresURL selects the PostgreSQL backend when not empty.
	PostgresURL string `env:"POSTGRES_URL" secret:"true" desc:"PostgreSQL connection URL, e.g. postgres://callguard:secret@db:5432/callguard?sslmode=disable; empty means the embedded store (or EventStoreDB); not together with GUARD_EVENTSTORE_URL"`
	// PostgresMaxConns is the PostgreSQL pool size.
	PostgresMaxConns int `env:"POSTGRES_MAX_CONNS" envDefault:"32" desc:"connections in the PostgreSQL pool: concurrent appends share a WAL flush only as far as they have connections to run on"`
	// NodeName is written into the metadata of every event this node appends.
	NodeName string `env:"NODE_NAME" desc:"name of this guard node in event metadata (default: the host name)"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info" desc:"log level: debug, info, warn or error"`
	// LogFormat is text (for people) or json (for log shippers).
	LogFormat string `env:"LOG_FORMAT" envDefault:"text" desc:"log format: text or json"`
	// CallLog writes the call log (actors/call.CallLog): one info line per
	// call at its end, at most CallLogRefused a second for refused calls.
	CallLog        bool `env:"CALL_LOG" envDefault:"true" desc:"log one line per call at its end, at info level: call ID and SIP Call-ID, caller, callee, verdict, rule, action, challenge outcome, end cause and SIP status (486 when the PBX was busy), durations, billed or not; false turns it off"`
	CallLogRefused int  `env:"CALL_LOG_REFUSED_PER_SECOND" envDefault:"20" desc:"call log lines a second at most for refused calls (rejected, overload, store down), so that a flood does not flood the log; the rest are counted and their number logged every 10s (0: no line for refused calls)"`

	// Region is the libphonenumber region used to read caller numbers
	// written without a country code ("8 999 ..." in Russia).
	Region string `env:"REGION" envDefault:"RU" desc:"default region (ISO 3166 code) for caller numbers without a country code"`

	// Policy is the blocking policy (limits, levels, expiry, escalation).
	Policy policy.Config

	// SIP is the SIP front: listeners, trusted trunks, the PBX, prompts.
	SIP sipguard.Config

	// Call is how each call is handled: mode, grace, code, store-down
	// policy.
	Call call.Config

	// Attack is the lines' under-attack detection (actors/line).
	Attack line.Settings

	// CRM is the lookup of callers in the bank's CRM (actors/crm).
	CRM crm.Config

	// Admin is the admin HTTP API. An empty token is replaced at start by
	// a random one written to GUARD_DATA_DIR/admin.token (see adminToken).
	Admin adminapi.Config
	// Console is the operator's web console: mounted at /console/ on the
	// admin API's listener, or on its own (GUARD_CONSOLE_LISTEN).
	Console console.Config
	// The read side: projections, reports, metrics and readiness.
	TimeZone          string        `env:"TIMEZONE" envDefault:"Europe/Moscow" desc:"IANA time zone of report days and hours and of profiles' calls today (changing it rebuilds them), of dates given as an expiry, of the windows of schedules added (each keeps the zone it was added in), and of every time printed for people (CSV and JSON are UTC)"`
	TariffPerMinute   float64       `env:"TARIFF_PER_MINUTE" envDefault:"0" desc:"cost of a minute of a call to the toll-free number, for the money-saved estimate"`
	Currency          string        `env:"CURRENCY" envDefault:"RUB" desc:"currency label of money figures"`
	AssumedMinutes    float64       `env:"ASSUMED_CALL_MINUTES" envDefault:"2" desc:"minutes a blocked call is assumed to last when a day has no answered calls to average"`
	Billing           string        `env:"BILLING" envDefault:"minute" desc:"carrier billing: minute (every started minute) or second"`
	ProjectionBatch   int           `env:"PROJECTION_BATCH" envDefault:"16384" desc:"events per projection transaction at most"`
	MetricsListen     string        `env:"METRICS_LISTEN" envDefault:"127.0.0.1:9780" desc:"host:port of /metrics, /healthz and /readyz (no auth; loopback by default); empty disables"`
	Pprof             bool          `env:"PPROF" envDefault:"false" desc:"serve Go's profiler at /debug/pprof on GUARD_METRICS_LISTEN, which must then be a loopback address (refused otherwise; reach a remote node through an SSH tunnel)"`
	ReadyMaxLag       time.Duration `env:"READY_MAX_LAG" envDefault:"10s" desc:"/readyz fails while a projection is further behind than this"`
	ReadyMaxLagEvents uint64        `env:"READY_MAX_LAG_EVENTS" envDefault:"0" desc:"/readyz fails while a projection is more events behind (0: no limit)"`

	// ProjectionCommitInterval is the projections' cadence (see
	// projections/runner): with ProjectionBatch, the time and size bounds
	// of a live projection's commit.
	ProjectionCommitInterval time.Duration `env:"PROJECTION_COMMIT_INTERVAL" envDefault:"100ms" desc:"a live projection commits the events it gathered this long after the first of them arrived, or sooner when GUARD_PROJECTION_BATCH are pending or an admin read waits for them (0: commit each arrival)"`

	// AdminURL is where the CLI finds a running guard's admin API.
	AdminURL string `env:"ADMIN_URL" desc:"URL of a running guard's admin API, for the CLI: when set, every command asks that guard and nothing else (default: GUARD_ADMIN_LISTEN's address; read commands read GUARD_DATA_DIR directly when no guard holds it)"`

	// SnapshotEvery and GrainIdle tune the caller grains.
	SnapshotEvery int           `env:"SNAPSHOT_EVERY" envDefault:"100" desc:"a caller grain saves a snapshot after this many new events (0 disables)"`
	GrainIdle     time.Duration `env:"GRAIN_IDLE" envDefault:"10m" desc:"a caller grain idle this long is passivated (its memory freed)"`
	MaxGrains     int           `env:"MAX_GRAINS" envDefault:"50000" desc:"caller grains in memory on this node beyond which a grain activated passivates after 5 s idle instead of GRAIN_IDLE (about 3.5 KB each; 0: no bound)"`

	// ClusterName and ClusterListen place this node in the actor cluster.
	ClusterName   string `env:"CLUSTER_NAME" envDefault:"callguard" desc:"actor cluster name; the same on every node of one deployment"`
	ClusterListen string `env:"CLUSTER_LISTEN" envDefault:"127.0.0.1:0" desc:"host:port of this node's actor remoting (port 0: any free port); remoting is not authenticated, so keep it on loopback or a private network"`
	// ClusterProvider chooses how nodes find each other; see
	// startMembership.
	ClusterProvider       string `env:"CLUSTER_PROVIDER" envDefault:"single" desc:"cluster membership: single (this node alone, no etcd) or etcd (nodes sharing one event store find each other in etcd; each registers under a 3 s lease)"`
	EtcdEndpoints         string `env:"ETCD_ENDPOINTS" desc:"comma-separated etcd client URLs, e.g. http://10.0.0.1:2379,http://10.0.0.2:2379 (required with GUARD_CLUSTER_PROVIDER=etcd)"`
	ClusterAdvertisedHost string `env:"CLUSTER_ADVERTISED_HOST" desc:"host or IP the other nodes reach this node's remoting at (with etcd; required when GUARD_CLUSTER_LISTEN's host is 0.0.0.0, :: or empty); the port is GUARD_CLUSTER_LISTEN's"`
}

// Cluster membership providers (GUARD_CLUSTER_PROVIDER).
const (
	providerSingle = "single"
	providerEtcd   = "etcd"
)

// etcdEndpoints splits GUARD_ETCD_ENDPOINTS.
func (c Config) etcdEndpoints() []string {
	var eps []string
	for _, ep := range strings.Split(c.EtcdEndpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	return eps
}

// validateCluster checks the membership settings.
func (c Config) validateCluster() []error {
	var errs []error
	host, _, err := net.SplitHostPort(c.ClusterListen)
	if err != nil {
		errs = append(errs, fmt.Errorf("%sCLUSTER_LISTEN %q is not host:port", envPrefix, c.ClusterListen))
	}
	switch c.ClusterProvider {
	case providerSingle:
	case providerEtcd:
		if len(c.etcdEndpoints()) == 0 {
			errs = append(errs, fmt.Errorf("%sCLUSTER_PROVIDER=etcd needs %sETCD_ENDPOINTS", envPrefix, envPrefix))
		}
		if err == nil && c.ClusterAdvertisedHost == "" {
			if ip, perr := netip.ParseAddr(host); host == "" || (perr == nil && ip.IsUnspecified()) {
				errs = append(errs, fmt.Errorf("%sCLUSTER_LISTEN %q listens on every address: set %sCLUSTER_ADVERTISED_HOST to the one the other nodes reach", envPrefix, c.ClusterListen, envPrefix))
			}
		}
	default:
		errs = append(errs, fmt.Errorf("%sCLUSTER_PROVIDER is %q, want single or etcd", envPrefix, c.ClusterProvider))
	}
	return errs
}

// sharedStore reports whether the event store is one several nodes can
// share (not the embedded one).
func (c Config) sharedStore() bool { return !c.embeddedStore() }

// clusterWarnings are the membership settings that work but deserve a
// line in the log.
func (c Config) clusterWarnings() []string {
	var ws []string
	if !loopbackListen(c.ClusterListen) {
		ws = append(ws, fmt.Sprintf("%sCLUSTER_LISTEN %s is not a loopback address: actor remoting is not authenticated, keep it on a private network", envPrefix, c.ClusterListen))
	}
	if c.ClusterProvider == providerSingle && c.EtcdEndpoints != "" {
		ws = append(ws, fmt.Sprintf("%sETCD_ENDPOINTS is ignored: %sCLUSTER_PROVIDER is single", envPrefix, envPrefix))
	}
	if c.ClusterProvider == providerEtcd && !c.sharedStore() {
		ws = append(ws, fmt.Sprintf("%sCLUSTER_PROVIDER is etcd on the embedded store: every node needs the same shared store, or each counts only its own calls", envPrefix))
	}
	return ws
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
		return Config{}, configError{envErrors(err, vars)}
	}
	if cfg.NodeName == "" {
		if host, err := os.Hostname(); err == nil {
			cfg.NodeName = host
		} else {
			cfg.NodeName = "guard"
		}
	}
	if err := cfg.validate(); err != nil {
		return Config{}, configError{err}
	}
	return cfg, nil
}

// configError is every problem of a configuration, one line each, so that
// an operator fixes them all at once:
//
//	configuration: GUARD_MODE is "enforc", want enforce or observe
//	configuration: 2 problems:
//	  GUARD_MODE is "enforc", want enforce or observe
//	  GUARD_PBX_URI "notauri" is not a sip: URI with a host
type configError struct{ err error }

func (e configError) Unwrap() error { return e.err }

func (e configError) Error() string {
	problems := leaves(e.err)
	if len(problems) == 1 {
		return "configuration: " + problems[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "configuration: %d problems:", len(problems))
	for _, p := range problems {
		b.WriteString("\n  ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// leaves flattens joined errors into the list of single problems.
func leaves(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

// withoutPrefix is err's message without the "<sentinel>: " a part's
// validation puts before each problem: the variable it names is context
// enough.
func withoutPrefix(err, sentinel error) []error {
	var out []error
	for _, e := range leaves(err) {
		if msg, ok := strings.CutPrefix(e.Error(), sentinel.Error()+": "); ok {
			e = errors.New(msg)
		}
		out = append(out, e)
	}
	return out
}

// unknownVars names the GUARD_ variables in environ that no setting reads,
// each with the nearest known name when one is close: a misspelt
// GUARD_LIMT_HOUR would otherwise leave the default in force unseen.
func unknownVars(environ []string) []string {
	known := map[string]bool{}
	var names []string
	for _, v := range configVars() {
		known[v.Name] = true
		names = append(names, v.Name)
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, envPrefix) || known[k] {
			continue
		}
		msg := k + " is not a callguard setting and is ignored"
		if near := nearest(k, names); near != "" {
			msg += "; did you mean " + near + "?"
		} else {
			msg += " (callguard config --markdown lists the settings)"
		}
		out = append(out, msg)
	}
	slices.Sort(out)
	return out
}

// warnUnknownVars writes unknownVars to w, one warning a line.
func warnUnknownVars(w io.Writer, environ []string) {
	for _, msg := range unknownVars(environ) {
		fmt.Fprintf(w, "callguard: warning: %s\n", msg)
	}
}

// nearest is the name closest to s by edit distance, if it is close
// enough to be a slip of the keyboard (at most a third of the part after
// the prefix); "" otherwise.
func nearest(s string, names []string) string {
	best, bestDist := "", 0
	for _, n := range names {
		d := editDistance(strings.TrimPrefix(s, envPrefix), strings.TrimPrefix(n, envPrefix))
		if best == "" || d < bestDist {
			best, bestDist = n, d
		}
	}
	if best == "" || bestDist > max(1, len(strings.TrimPrefix(s, envPrefix))/3) {
		return ""
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and swaps of neighbours (MOED for
// MODE) cost one each. Bytes: the variables are ASCII.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
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
	if err := c.Attack.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%sATTACK_RATE, _WINDOW, _CALM: %w", envPrefix, err))
	}
	if err := c.CRM.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%sCRM_*: %w", envPrefix, err))
	}
	if c.CRM.Enabled() && c.Call.DecideTimeout > 0 && c.CRM.Timeout >= c.Call.DecideTimeout {
		errs = append(errs, fmt.Errorf("%sCRM_TIMEOUT %v must be shorter than %sDECIDE_TIMEOUT %v: the lookup is part of the decision", envPrefix, c.CRM.Timeout, envPrefix, c.Call.DecideTimeout))
	}
	if c.CallLogRefused < 0 {
		errs = append(errs, fmt.Errorf("%sCALL_LOG_REFUSED_PER_SECOND is %d, want 0 or more", envPrefix, c.CallLogRefused))
	}
	if _, err := phone.New(c.Region); err != nil {
		errs = append(errs, fmt.Errorf("%sREGION is %q, want an ISO 3166 region code such as RU", envPrefix, c.Region))
	}
	// The SIP front and the admin API check their own settings; serve
	// would refuse them at start, and `callguard config` must say so first.
	if err := c.SIP.Validate(); err != nil {
		errs = append(errs, withoutPrefix(err, sipguard.ErrConfig)...)
	}
	admin := c.Admin
	if host, _, err := net.SplitHostPort(admin.Listen); err == nil && adminapi.IsLoopback(host) && admin.Token == "" {
		// On loopback serve draws a token and keeps it in the data
		// directory (see adminToken); only a token given must be good.
		admin.Token = strings.Repeat("x", adminapi.MinTokenLength)
	}
	if err := admin.Validate(); err != nil {
		errs = append(errs, withoutPrefix(err, adminapi.ErrConfig)...)
	}
	if err := c.Console.Validate(); err != nil {
		errs = append(errs, withoutPrefix(err, console.ErrConfig)...)
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		errs = append(errs, fmt.Errorf("%sTIMEZONE %q: %v", envPrefix, c.TimeZone, err))
	} else if err := c.reportsConfig().Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.embeddedStore() && c.DataDir == "" {
		errs = append(errs, fmt.Errorf("%sDATA_DIR is empty and neither %sEVENTSTORE_URL nor %sPOSTGRES_URL is set: the store needs one of them", envPrefix, envPrefix, envPrefix))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, namePolicySettings(err, func(s policySetting) string { return s.Name }))
	}
	errs = append(errs, nameCallSettings(c.Call.Validate())...)
	if c.Call.DecideTimeout <= 0 { // zero means a default in call.Config, not from the environment
		errs = append(errs, fmt.Errorf("%sDECIDE_TIMEOUT is %v, want a positive duration", envPrefix, c.Call.DecideTimeout))
	}
	if c.SnapshotEvery < 0 {
		errs = append(errs, fmt.Errorf("%sSNAPSHOT_EVERY is %d, want 0 or more", envPrefix, c.SnapshotEvery))
	}
	if c.MaxGrains < 0 {
		errs = append(errs, fmt.Errorf("%sMAX_GRAINS is %d, want 0 or more", envPrefix, c.MaxGrains))
	}
	if c.GrainIdle <= 0 {
		errs = append(errs, fmt.Errorf("%sGRAIN_IDLE is %v, want a positive duration", envPrefix, c.GrainIdle))
	}
	if c.ProjectionCommitInterval < 0 || c.ProjectionCommitInterval > time.Minute {
		errs = append(errs, fmt.Errorf("%sPROJECTION_COMMIT_INTERVAL is %v, want 0 to 1m (a tenth of a second is usual)", envPrefix, c.ProjectionCommitInterval))
	}
	if c.Admin.ReadWait < 0 {
		errs = append(errs, fmt.Errorf("%sADMIN_READ_WAIT is %v, want a positive duration", envPrefix, c.Admin.ReadWait))
	}
	errs = append(errs, c.validateCluster()...)
	if c.EventStoreURL != "" {
		if u, err := url.Parse(c.EventStoreURL); err != nil || (u.Scheme != "esdb" && u.Scheme != "esdb+discover") {
			errs = append(errs, fmt.Errorf("%sEVENTSTORE_URL must be an esdb:// or esdb+discover:// connection string", envPrefix))
		}
	}
	if c.PostgresURL != "" {
		if u, err := url.Parse(c.PostgresURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, fmt.Errorf("%sPOSTGRES_URL must be a postgres:// or postgresql:// URL", envPrefix))
		}
		if c.EventStoreURL != "" {
			errs = append(errs, fmt.Errorf("%sEVENTSTORE_URL and %sPOSTGRES_URL are both set: choose one event store", envPrefix, envPrefix))
		}
	}
	if c.PostgresMaxConns < 1 {
		errs = append(errs, fmt.Errorf("%sPOSTGRES_MAX_CONNS is %d, want 1 or more", envPrefix, c.PostgresMaxConns))
	}
	return errors.Join(errs...)
}

// nameCallSettings names the call settings Validate refused by their
// environment variables, from call.Config's env tags.
func nameCallSettings(err error) []error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	t := reflect.TypeOf(call.Config{})
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		var se *call.SettingError
		if !errors.As(e, &se) {
			out = append(out, e)
			continue
		}
		out = append(out, errors.New(se.Message(func(field string) string {
			if f, ok := t.FieldByName(field); ok && f.Tag.Get("env") != "" {
				return envPrefix + f.Tag.Get("env")
			}
			return field
		})))
	}
	return out
}

// envErrors says what the env library could not read in the words of the
// variables an operator sets. Its ParseError names a Go field and its type;
// Config's env tags map them back to the variable, and environ (the
// variables given) to the value that failed. Other errors of the library
// already name their variable.
func envErrors(err error, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if !errors.As(e, &pe) {
			errs = append(errs, e)
			continue
		}
		names := variablesOf(pe.Name, pe.Type, environ)
		if len(names) != 1 {
			// Fields of one name and type in two nested structs, both set
			// (none set cannot fail: defaults parse).
			errs = append(errs, fmt.Errorf("%s: one of them is not %s", strings.Join(names, " or "), wantOf(pe)))
			continue
		}
		errs = append(errs, fmt.Errorf("%s is %q, want %s", names[0], environ[names[0]], wantOf(pe)))
	}
	return errors.Join(errs...)
}

// variablesOf names the variables of Config's fields called field of type
// t that environ sets.
func variablesOf(field string, t reflect.Type, environ map[string]string) []string {
	ct := reflect.TypeFor[Config]()
	var names []string
	for _, v := range configVars() {
		f := ct.FieldByIndex(v.index)
		if _, set := environ[v.Name]; set && f.Name == field && f.Type == t {
			names = append(names, v.Name)
		}
	}
	if len(names) == 0 {
		names = []string{fmt.Sprintf("the variable of field %s", field)}
	}
	return names
}

// wantOf says what a value of the type that failed to parse looks like.
func wantOf(pe env.ParseError) string {
	var want string
	switch t := pe.Type; {
	case t == reflect.TypeFor[time.Duration]():
		want = "a duration such as 90s, 10m or 1h30m"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		want = "a whole number"
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		want = "a whole number, 0 or more"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		want = "a number such as 2 or 1.5"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	default:
		return fmt.Sprintf("a %s (%v)", t, pe.Err)
	}
	if errors.Is(pe.Err, strconv.ErrRange) {
		want += " in range"
	}
	return want
}

// reportsConfig is the reports' settings (the time zone must be valid).
func (c Config) reportsConfig() reports.Config {
	loc, err := time.LoadLocation(c.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	return reports.Config{Location: loc, TariffPerMinute: c.TariffPerMinute, Currency: c.Currency,
		AssumedMinutes: c.AssumedMinutes, Billing: c.Billing}
}

// configVar is one documented configuration variable.
type configVar struct {
	Name, Default, Desc string
	Secret              bool
	index               []int
}

// configVars lists every variable of Config in declaration order.
func configVars() []configVar {
	return appendVars(nil, reflect.TypeOf(Config{}), nil)
}

// appendVars walks t's fields; nested structs without an env tag (such as
// policy.Config) contribute their own variables under the same prefix.
func appendVars(vars []configVar, t reflect.Type, index []int) []configVar {
	for i := range t.NumField() {
		f := t.Field(i)
		idx := append(append([]int(nil), index...), i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "-" {
			continue // set by the program, not read from the environment
		}
		if name == "" {
			if f.Type.Kind() == reflect.Struct {
				vars = appendVars(vars, f.Type, idx)
			}
			continue
		}
		vars = append(vars, configVar{
			Name: envPrefix + name, Default: f.Tag.Get("envDefault"), Desc: f.Tag.Get("desc"),
			Secret: f.Tag.Get("secret") == "true", index: idx,
		})
	}
	return vars
}

// embeddedStore reports whether the node's event store is the embedded one
// in DataDir rather than a server shared by several nodes.
func (c Config) embeddedStore() bool { return c.EventStoreURL == "" && c.PostgresURL == "" }

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
		// libpq also takes the password as a query parameter, and a
		// service such as the CRM may take a token there.
		if q := u.Query(); len(q) > 0 {
			masked := false
			for k := range q {
				if secretParam(k) {
					q.Set(k, "***")
					masked = true
				}
			}
			if masked {
				u.RawQuery = q.Encode()
			}
		}
		return u.Redacted()
	}
	return "***"
}

// secretParam reports whether a URL query parameter named k may hold a
// secret.
func secretParam(k string) bool {
	k = strings.ToLower(k)
	for _, w := range []string{"password", "token", "key", "secret", "auth", "sig", "pass"} {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// printConfig writes the effective configuration, secrets masked.
func printConfig(w io.Writer, cfg Config) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	v := reflect.ValueOf(cfg)
	for _, cv := range configVars() {
		val := fmt.Sprint(v.FieldByIndex(cv.index).Interface())
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
