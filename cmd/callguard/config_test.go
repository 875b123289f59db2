package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"
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
		{"bad limit", []string{"GUARD_LIMIT_HOUR=-1"}, "LIMIT_HOUR"},
		{"not a number", []string{"GUARD_LIMIT_DAY=many"}, "LIMIT_DAY"},
		{"bad duration", []string{"GUARD_GRAIN_IDLE=soon"}, "GRAIN_IDLE"},
		{"bad mode", []string{"GUARD_MODE=block"}, "GUARD_MODE"},
		{"short grace", []string{"GUARD_GRACE=1s"}, "GUARD_GRACE"},
		{"long code", []string{"GUARD_CODE_DIGITS=12"}, "GUARD_CODE_DIGITS"},
		{"bad store-down policy", []string{"GUARD_STORE_DOWN=maybe"}, "GUARD_STORE_DOWN"},
		{"no decide timeout", []string{"GUARD_DECIDE_TIMEOUT=0s"}, "GUARD_DECIDE_TIMEOUT"},
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
	cfg, err := loadConfig([]string{"GUARD_EVENTSTORE_URL=esdb://admin:changeit@db.example:2113?tls=false"})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := printConfig(&out, cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "changeit") {
		t.Fatalf("password printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "db.example:2113") {
		t.Fatalf("masked URL lost its host:\n%s", out.String())
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
