package readside

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/callguard/callguard/projections/reports"
)

func TestOpenRefusesBadConfig(t *testing.T) {
	_, err := Open(context.Background(), Config{Reports: reports.Config{Billing: "hourly"}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Open with no directory, store or valid reports = %v, want ErrConfig", err)
	}
	if !errors.Is(err, reports.ErrConfig) {
		t.Errorf("%v: the reports' own error is lost", err)
	}
	for _, want := range []string{"data directory", "event store", "billing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v: says nothing of the %s", err, want)
		}
	}
}
