package adminapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Backuper writes a backup archive of the node's data directory
// (GET /v1/backup): consistent copies of its databases, taken while the
// node serves. An error before anything was written is answered as a
// problem; after that the answer can only be cut, which the archive's
// reader detects (its manifest comes last).
type Backuper interface {
	Backup(ctx context.Context, w io.Writer) error
}

// BackupFunc adapts a function to Backuper.
type BackupFunc func(ctx context.Context, w io.Writer) error

// Backup calls f.
func (f BackupFunc) Backup(ctx context.Context, w io.Writer) error { return f(ctx, w) }

// BackupMediaType is the media type of GET /v1/backup's answer.
const BackupMediaType = "application/gzip"

func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if s.d.Backup == nil {
		writeProblem(w, r, newProblem(CodeNotImplemented, "this node was started without backups"))
		return
	}
	// A backup takes as long as the data directory is large: the
	// server's write timeout is made for commands.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	name := "callguard-backup-" + s.d.Clock().UTC().Format("20060102T150405Z") + ".tar.gz"
	sw := &startWriter{w: w, start: func() {
		w.Header().Set("Content-Type", BackupMediaType)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		w.WriteHeader(http.StatusOK)
	}}
	err := s.d.Backup.Backup(r.Context(), sw)
	switch {
	case err == nil:
		if !sw.started {
			sw.start()
		}
		s.d.Logger.Info("backup sent", "request_id", requestID(r), "bytes", sw.n)
	case !sw.started:
		s.d.Logger.Error("backup failed", "request_id", requestID(r), "err", err)
		writeProblem(w, r, newProblem(CodeReadSideFailed, "the backup could not be taken: "+clip(err.Error())))
	default:
		// Half an archive must not pass for a whole one: cut the
		// connection, so the client sees it end early.
		s.d.Logger.Error("backup failed after it began; the answer is cut short", "request_id", requestID(r), "bytes", sw.n, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// startWriter sends the answer's headers with its first byte.
type startWriter struct {
	w       io.Writer
	start   func()
	started bool
	n       int64
}

func (s *startWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.start()
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// Backup streams a backup archive (GET /v1/backup) into w. The caller
// checks the archive: an answer cut short by the server is written as far
// as it came.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	base := strings.TrimRight(c.BaseURL, "/")
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("admin API: base URL %q is not an http(s) URL", c.BaseURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/backup", nil)
	if err != nil {
		return fmt.Errorf("admin API: GET /v1/backup: %w", err)
	}
	req.Header.Set("Accept", BackupMediaType+", "+ProblemMediaType)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: GET /v1/backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		return problemOf(resp, data)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("admin API: GET /v1/backup: the archive ended early: %w", err)
	}
	return nil
}
