package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/callguard/callguard/cmd/callguard/adminapi"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callguard/callguard/actors/policy"
)

func TestLoadConfigDefaultsAndErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		wantErr string
	}{
		{"defaults", nil, ""},
		{"bad log level", []string{"GUARD_LOG_LEVEL=loud"}, "GUARD_LOG_LEVEL is \"loud\""},
		{"bad store url", []string{"GUARD_EVENTSTORE_URL=http://x"}, "esdb://"},
		{"bad postgres url", []string{"GUARD_POSTGRES_URL=mysql://x"}, "GUARD_POSTGRES_URL must be a postgres://"},
		{"two store servers", []string{"GUARD_EVENTSTORE_URL=esdb://x:2113", "GUARD_POSTGRES_URL=postgres://x/db"}, "both set: choose one event store"},
		{"no postgres conns", []string{"GUARD_POSTGRES_MAX_CONNS=0"}, "GUARD_POSTGRES_MAX_CONNS is 0"},
		{"bad limit", []string{"GUARD_LIMIT_HOUR=-1"}, "GUARD_LIMIT_HOUR is -1, want 0 (off) or more"},
		{"limits disagree", []string{"GUARD_LIMIT_DAY=2"}, "GUARD_LIMIT_DAY (2) must be at least GUARD_LIMIT_HOUR (5), or the hourly limit can never fire"},
		{"not a number", []string{"GUARD_LIMIT_DAY=many"}, `GUARD_LIMIT_DAY is "many", want a whole number`},
		{"bad duration", []string{"GUARD_GRAIN_IDLE=soon"}, `GUARD_GRAIN_IDLE is "soon", want a duration such as 90s, 10m or 1h30m`},
		{"out of range", []string{"GUARD_PROJECTION_BATCH=99999999999999999999"}, `GUARD_PROJECTION_BATCH is "99999999999999999999", want a whole number in range`},
		{"not a bool", []string{"GUARD_COUNT_ABANDONED=maybe"}, `GUARD_COUNT_ABANDONED is "maybe", want true or false`},
		{"bad mode", []string{"GUARD_MODE=block"}, "GUARD_MODE"},
		{"short grace", []string{"GUARD_GRACE=1s"}, "GUARD_GRACE"},
		{"long code", []string{"GUARD_CODE_DIGITS=12"}, "GUARD_CODE_DIGITS"},
		{"bad store-down policy", []string{"GUARD_STORE_DOWN=maybe"}, "GUARD_STORE_DOWN"},
		{"no decide timeout", []string{"GUARD_DECIDE_TIMEOUT=0s"}, "GUARD_DECIDE_TIMEOUT"},
		{"crm not http", []string{"GUARD_CRM_URL=ftp://crm/x"}, "GUARD_CRM_*: crm settings: URL is not an http"},
		{"crm budget beyond decide", []string{"GUARD_CRM_URL=http://crm/x", "GUARD_CRM_TIMEOUT=3s"}, "GUARD_CRM_TIMEOUT 3s must be shorter than GUARD_DECIDE_TIMEOUT 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(tt.environ)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("loadConfig: %v", err)
				}
				if cfg.DataDir != "./data" || cfg.Policy.LimitHour != 5 || cfg.NodeName == "" ||
					cfg.Call.Mode != "enforce" || cfg.Call.Grace != 3*time.Second || cfg.Call.CodeDigits != 2 ||
					cfg.Call.StoreDown != "pass" || cfg.Call.DecideTimeout != 2*time.Second {
					t.Fatalf("defaults not applied: %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("loadConfig error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateNeedsAStore(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = ""
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "GUARD_DATA_DIR is empty") {
		t.Fatalf("validate without a store = %v", err)
	}
}

func TestPrintConfigMasksSecrets(t *testing.T) {
	tests := []struct{ env, host string }{
		{"GUARD_EVENTSTORE_URL=esdb://admin:changeit@db.example:2113?tls=false", "db.example:2113"},
		{"GUARD_POSTGRES_URL=postgres://callguard:changeit@pg.example:5432/callguard?sslmode=disable", "pg.example:5432"},
		{"GUARD_POSTGRES_URL=postgres://pg.example/callguard?password=changeit", "pg.example"},
		{"GUARD_CRM_URL=https://crm.bank.example/v1/lookup?api_key=changeit&format=json", "crm.bank.example"},
		{"GUARD_CRM_TOKEN=changeit", "GUARD_CRM_TOKEN"},
	}
	for _, tt := range tests {
		cfg, err := loadConfig([]string{tt.env})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := printConfig(&out, cfg); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.String(), "changeit") {
			t.Fatalf("%s: password printed:\n%s", tt.env, out.String())
		}
		if !strings.Contains(out.String(), tt.host) {
			t.Fatalf("%s: masked URL lost its host:\n%s", tt.env, out.String())
		}
	}
}

// The README's configuration table is generated from Config; this keeps it
// in step: every variable the code reads is documented with its default.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	printConfigMarkdown(&table)
	for _, line := range strings.Split(strings.TrimSpace(table.String()), "\n")[2:] {
		if !strings.Contains(string(readme), line) {
			t.Errorf("README lacks the configuration row:\n%s\n(regenerate it with: go run ./cmd/callguard config --markdown)", line)
		}
	}
}

func TestRunUsageAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"version"}, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "callguard ") {
		t.Fatalf("version: code %d, output %q %q", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"frobnicate"}, nil, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut.String())
	}
}

// Every parse error is reported, each naming its variable.
func TestLoadConfigListsEveryParseError(t *testing.T) {
	_, err := loadConfig([]string{"GUARD_GRAIN_IDLE=soon", "GUARD_TARIFF_PER_MINUTE=cheap"})
	for _, want := range []string{`GUARD_GRAIN_IDLE is "soon"`, `GUARD_TARIFF_PER_MINUTE is "cheap", want a number`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("loadConfig error = %v, want one mentioning %q", err, want)
		}
	}
}

// The policy's settings are one list: a flag each for replay, a variable
// each, and a query parameter each in the admin API's replay.
func TestPolicySettingsAreOneList(t *testing.T) {
	var names []string
	for _, s := range policySettings() {
		if s.Flag == "" || s.Desc == "" || "GUARD_"+strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")) != s.Name {
			t.Errorf("setting %+v: flag and variable disagree, or no help", s)
		}
		names = append(names, s.Flag)
	}
	if n := reflect.TypeFor[policy.Config]().NumField(); len(names) != n {
		t.Errorf("%d settings for %d policy.Config fields", len(names), n)
	}
	var cfg policy.Config
	fs := newPolicyFlagSet(&cfg)
	for _, n := range names {
		if fs.Lookup(n) == nil {
			t.Errorf("no flag --%s", n)
		}
	}
	doc, err := os.ReadFile("adminapi/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var api struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name string }
		}
	}
	if err := json.Unmarshal(doc, &api); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, p := range api.Paths["/v1/replay"]["get"].Parameters {
		documented = append(documented, p.Name)
	}
	// Besides the policy's settings, replay tries range rules.
	if want := append(slices.Clone(names), trySettingBlock, trySettingWhitelist, trySettingLine); !slices.Equal(documented, want) {
		t.Errorf("openapi.json documents replay settings %v, want %v", documented, want)
	}
	base := policy.DefaultConfig()
	if _, err := policyWith(base, map[string]string{"limit-hour": "-1"}); err == nil || !strings.Contains(err.Error(), "limit-hour is -1") {
		t.Errorf("policyWith limit-hour=-1: %v", err)
	}
	var ve *adminapi.SettingValueError
	if _, err := policyWith(base, map[string]string{"limit-hour": "many"}); !errors.As(err, &ve) || ve.Setting != "limit-hour" || ve.Value != "many" {
		t.Errorf("policyWith limit-hour=many: %v, want a SettingValueError naming it", err)
	}
	if pc, err := policyWith(base, map[string]string{"block-for": "2h", "count-abandoned": "true"}); err != nil || pc.BlockFor != 2*time.Hour || !pc.CountAbandoned {
		t.Errorf("policyWith: %+v, %v", pc, err)
	}
}

// Every problem of a configuration is listed, the SIP front's and the
// admin API's included, one a line.
func TestLoadConfigListsEveryProblem(t *testing.T) {
	_, err := loadConfig([]string{"GUARD_MODE=enforc", "GUARD_PBX_URI=notauri", "GUARD_REGION=XX", "GUARD_ADMIN_TOKEN=short"})
	if err == nil {
		t.Fatal("loadConfig accepted a bad mode, PBX URI, region and token")
	}
	msg := err.Error()
	for _, want := range []string{"configuration: 4 problems:\n", "\n  GUARD_MODE is \"enforc\"", "\n  GUARD_PBX_URI \"notauri\" is not a sip: URI", "\n  GUARD_REGION is \"XX\"", "\n  GUARD_ADMIN_TOKEN is 5 characters"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "SIP guard configuration") || strings.Contains(msg, "admin API configuration") {
		t.Errorf("error repeats its parts' prefixes:\n%s", msg)
	}
	// A loopback admin API without a token is fine: serve draws one.
	if _, err := loadConfig([]string{"GUARD_ADMIN_LISTEN=127.0.0.1:1"}); err != nil {
		t.Errorf("loopback without a token: %v", err)
	}
	if _, err := loadConfig([]string{"GUARD_ADMIN_LISTEN=0.0.0.0:1"}); err == nil || !strings.Contains(err.Error(), "without a token") {
		t.Errorf("all interfaces without a token: %v", err)
	}
}

func TestUnknownVariables(t *testing.T) {
	got := unknownVars([]string{"GUARD_LIMT_HOUR=3", "GUARD_LIMIT_DAY=9", "PATH=/bin", "GUARD_ZZZZZZZZZZ=1", "GUARD_TIMEZON=UTC", "GUARD_MOED=observe"})
	want := []string{
		"GUARD_LIMT_HOUR is not a callguard setting and is ignored; did you mean GUARD_LIMIT_HOUR?",
		"GUARD_MOED is not a callguard setting and is ignored; did you mean GUARD_MODE?",
		"GUARD_TIMEZON is not a callguard setting and is ignored; did you mean GUARD_TIMEZONE?",
		"GUARD_ZZZZZZZZZZ is not a callguard setting and is ignored (callguard config --markdown lists the settings)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("unknownVars:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for a, b := range map[[2]string]int{{"", ""}: 0, {"abc", ""}: 3, {"kitten", "sitting"}: 3, {"LIMT_HOUR", "LIMIT_HOUR"}: 1} {
		if d := editDistance(a[0], a[1]); d != b {
			t.Errorf("editDistance(%q, %q) = %d, want %d", a[0], a[1], d, b)
		}
	}
}

func TestClusterMembershipSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		want    string // in the error; empty: accepted
	}{
		{"single by default", nil, ""},
		{"etcd with endpoints", []string{"GUARD_CLUSTER_PROVIDER=etcd", "GUARD_ETCD_ENDPOINTS=http://127.0.0.1:2379, http://127.0.0.1:2380"}, ""},
		{"etcd without endpoints", []string{"GUARD_CLUSTER_PROVIDER=etcd", "GUARD_ETCD_ENDPOINTS= , "}, "GUARD_CLUSTER_PROVIDER=etcd needs GUARD_ETCD_ENDPOINTS"},
		{"unknown provider", []string{"GUARD_CLUSTER_PROVIDER=consul"}, `GUARD_CLUSTER_PROVIDER is "consul", want single or etcd`},
		{"etcd on every address", []string{"GUARD_CLUSTER_PROVIDER=etcd", "GUARD_ETCD_ENDPOINTS=http://e:2379", "GUARD_CLUSTER_LISTEN=0.0.0.0:7000"}, "set GUARD_CLUSTER_ADVERTISED_HOST"},
		{"etcd on every address, advertised", []string{"GUARD_CLUSTER_PROVIDER=etcd", "GUARD_ETCD_ENDPOINTS=http://e:2379", "GUARD_CLUSTER_LISTEN=:7000", "GUARD_CLUSTER_ADVERTISED_HOST=10.0.0.5"}, ""},
		{"listen not host:port", []string{"GUARD_CLUSTER_LISTEN=7000"}, `GUARD_CLUSTER_LISTEN "7000" is not host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(tc.environ)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			case tc.want == "" && cfg.ClusterProvider == providerEtcd && len(cfg.etcdEndpoints()) == 0:
				t.Fatal("etcd accepted without endpoints")
			}
		})
	}
	cfg, err := loadConfig([]string{"GUARD_CLUSTER_PROVIDER=etcd", "GUARD_ETCD_ENDPOINTS=http://a:2379,,http://b:2379 ", "GUARD_CLUSTER_LISTEN=10.0.0.5:7000"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.etcdEndpoints(), " "); got != "http://a:2379 http://b:2379" {
		t.Errorf("endpoints %q", got)
	}
	warnings := strings.Join(cfg.clusterWarnings(), "\n")
	for _, want := range []string{"not a loopback address", "embedded store"} {
		if !strings.Contains(warnings, want) {
			t.Errorf("warnings lack %q:\n%s", want, warnings)
		}
	}
	if ws := (Config{ClusterListen: "127.0.0.1:0", ClusterProvider: providerSingle}).clusterWarnings(); len(ws) != 0 {
		t.Errorf("the default draws warnings: %v", ws)
	}
}
