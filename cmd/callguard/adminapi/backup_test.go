package adminapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// GET /v1/backup streams what the Backuper writes; a failure before the
// first byte is a problem, one after it cuts the answer so that the client
// cannot take half an archive for a whole one.
func TestBackupEndpoint(t *testing.T) {
	payload := bytes.Repeat([]byte("archive "), 64<<10) // beyond any buffer
	cases := []struct {
		name    string
		backup  Backuper
		want    []byte
		problem string // the problem code the client gets
		cut     bool   // the client gets an error after some bytes
	}{
		{name: "whole", backup: BackupFunc(func(_ context.Context, w io.Writer) error {
			_, err := w.Write(payload)
			return err
		}), want: payload},
		{name: "failed before the first byte", backup: BackupFunc(func(context.Context, io.Writer) error {
			return errors.New("projections closed")
		}), problem: CodeReadSideFailed},
		{name: "failed midway", backup: BackupFunc(func(_ context.Context, w io.Writer) error {
			if _, err := w.Write(payload); err != nil {
				return err
			}
			return errors.New("disk read error")
		}), cut: true},
		{name: "no backups on this node", problem: CodeNotImplemented},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := New(Config{Token: testToken}, Deps{Callers: &fakeCallers{}, Normalizer: testNormalizer(t), Backup: c.backup, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(s.Handler())
			defer ts.Close()
			var got bytes.Buffer
			err = (&Client{BaseURL: ts.URL, Token: testToken, HTTP: ts.Client()}).Backup(context.Background(), &got)
			switch {
			case c.problem != "":
				if !IsProblem(err, c.problem) || got.Len() != 0 {
					t.Fatalf("%v after %d bytes, want problem %s", err, got.Len(), c.problem)
				}
			case c.cut:
				if err == nil || !strings.Contains(err.Error(), "ended early") {
					t.Fatalf("%v after %d bytes, want the archive to end early", err, got.Len())
				}
			default:
				if err != nil || !bytes.Equal(got.Bytes(), c.want) {
					t.Fatalf("%v, %d bytes, want %d", err, got.Len(), len(c.want))
				}
			}
		})
	}
	s := newTestServer(t, &fakeCallers{}, nil)
	rec := serve(t, s, req{method: "GET", path: "/v1/backup", noAuth: true})
	if rec.Code != 401 {
		t.Fatalf("without a token: %d, want 401", rec.Code)
	}
}
