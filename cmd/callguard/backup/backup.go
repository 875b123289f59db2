// Package backup writes and reads callguard's backup archives.
//
// An archive is a gzipped tar (POSIX pax) of consistent copies of the
// databases of a guard's data directory, then a manifest:
//
//	projections/<name>.db   one per projection (read model and checkpoint)
//	pending.db              the pending spool (calls not yet recorded)
//	events.db               the embedded event store, when it is the store
//	manifest.json           format, time, versions, the head of the log,
//	                        each projection's checkpoint, each file's
//	                        size and SHA-256
//
// The files come in the order they were copied, the event store last:
// the log only grows, so every projection's checkpoint in the archive is
// at or behind the log's last event in it, and a guard started on a
// restored directory has its projections catch up with the log. The
// manifest comes last because the hashes are known only once the files
// are written; a reader checks it against the files it read, so an
// archive cut short (no manifest, or a gzip stream that does not end) or
// altered (a hash that differs) is refused.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// Format is the version of the archive layout this package writes and
// reads.
const Format = 1

// ManifestName is the manifest's name in the archive.
const ManifestName = "manifest.json"

// maxManifest bounds the manifest a reader accepts: a few hundred bytes a
// file.
const maxManifest = 1 << 20

// maxFiles bounds the files of an archive: a handful of projections, the
// spool and the store.
const maxFiles = 256

// Kinds of file in an archive.
const (
	KindEvents     = "events"
	KindProjection = "projection"
	KindPending    = "pending"
)

// Kinds of event store a backup was taken from.
const (
	StoreEmbedded     = "embedded"
	StorePostgres     = "postgres"
	StoreEventStoreDB = "eventstoredb"
)

// Names of the files in an archive (and in a data directory).
const (
	EventsFile  = "events.db"
	PendingFile = "pending.db"
	// ProjectionsDir holds one <name>.db per projection.
	ProjectionsDir = "projections"
)

// ErrInvalid is the sentinel of every error about an archive's content:
// not a backup, cut short, altered, or inconsistent.
var ErrInvalid = errors.New("not a valid callguard backup")

var validPath = regexp.MustCompile(`^(events\.db|pending\.db|projections/([a-z][a-z0-9-]{0,62})\.db)$`)

// Position is a position in the event log (events.Position).
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

func (p Position) less(q Position) bool {
	if p.Commit != q.Commit {
		return p.Commit < q.Commit
	}
	return p.Prepare < q.Prepare
}

// String renders p as events.Position does.
func (p Position) String() string {
	if p.Commit == p.Prepare {
		return fmt.Sprintf("%d", p.Commit)
	}
	return fmt.Sprintf("%d/%d", p.Commit, p.Prepare)
}

// Manifest describes an archive.
type Manifest struct {
	Format int `json:"format"`
	// Created is when the backup began.
	Created time.Time `json:"created"`
	// Version is the callguard version that wrote it.
	Version string    `json:"version"`
	Store   StoreInfo `json:"store"`
	// Files are the archive's files in archive order.
	Files []File `json:"files"`
}

// StoreInfo says which event store the guard used and where its log stood.
type StoreInfo struct {
	// Kind is StoreEmbedded (the log is in the archive, events.db) or a
	// database server's (it is not: back it up with the database's tools).
	Kind string `json:"kind"`
	// Head is the log's last event in events.db (embedded), or the head
	// of the database's log as the backup ended (a server).
	Head Position `json:"head"`
}

// File is one file of an archive.
type File struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Projection, ProjectionVersion, Checkpoint and Events describe a
	// projection's file: its name, the version of its read model, the last
	// event it holds and the events it consumed up to there.
	Projection        string    `json:"projection,omitempty"`
	ProjectionVersion string    `json:"projectionVersion,omitempty"`
	Checkpoint        *Position `json:"checkpoint,omitempty"`
	Events            uint64    `json:"events,omitempty"`
	// Pending counts the entries of the pending spool.
	Pending int `json:"pending,omitempty"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports what is wrong with m on its own: an unknown format or
// store, a file that is not one of an archive's, a projection ahead of the
// log it was copied with.
func (m Manifest) Validate() error {
	switch {
	case m.Format > Format:
		return invalid("archive format %d, made by a newer callguard; this one reads format %d", m.Format, Format)
	case m.Format != Format:
		return invalid("archive format %d; this callguard reads format %d", m.Format, Format)
	case m.Created.IsZero():
		return invalid("the manifest has no creation time")
	}
	switch m.Store.Kind {
	case StoreEmbedded, StorePostgres, StoreEventStoreDB:
	default:
		return invalid("unknown event store %q in the manifest", m.Store.Kind)
	}
	if len(m.Files) > maxFiles {
		return invalid("%d files, at most %d", len(m.Files), maxFiles)
	}
	seen := map[string]bool{}
	events := 0
	for _, f := range m.Files {
		if err := f.validate(); err != nil {
			return err
		}
		if seen[f.Path] {
			return invalid("%s is listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Kind == KindEvents {
			events++
		}
	}
	switch {
	case m.Store.Kind == StoreEmbedded && events == 0:
		return invalid("the store is embedded but the archive has no %s", EventsFile)
	case m.Store.Kind != StoreEmbedded && events > 0:
		return invalid("the store is %s but the archive has an %s", m.Store.Kind, EventsFile)
	}
	if m.Store.Kind == StoreEmbedded {
		for _, f := range m.Files {
			if f.Kind == KindProjection && m.Store.Head.less(*f.Checkpoint) {
				return invalid("projection %s is at %v, after the log's last event %v", f.Projection, *f.Checkpoint, m.Store.Head)
			}
		}
	}
	return nil
}

func (f File) validate() error {
	m := validPath.FindStringSubmatch(f.Path)
	if m == nil {
		return invalid("%q is not a file of a backup", f.Path)
	}
	var want string
	switch {
	case f.Path == EventsFile:
		want = KindEvents
	case f.Path == PendingFile:
		want = KindPending
	default:
		want = KindProjection
		if f.Projection != m[2] || f.Checkpoint == nil {
			return invalid("%s: want the projection %q and its checkpoint", f.Path, m[2])
		}
	}
	if f.Kind != want {
		return invalid("%s: kind %q, want %q", f.Path, f.Kind, want)
	}
	if f.Size < 0 {
		return invalid("%s: size %d", f.Path, f.Size)
	}
	if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != sha256.Size || hex.EncodeToString(b) != f.SHA256 {
		return invalid("%s: %q is not a SHA-256 in lower-case hex", f.Path, f.SHA256)
	}
	return nil
}

// Writer writes an archive. Add each file, then Close.
type Writer struct {
	gz  *gzip.Writer
	tw  *tar.Writer
	m   Manifest
	err error
}

// NewWriter starts an archive on w for a backup made by callguard version
// at created, of a guard whose event store is store (its Head may be set
// later, with SetHead).
func NewWriter(w io.Writer, created time.Time, version string, store StoreInfo) *Writer {
	// Fast compression: bbolt files are mostly empty or repetitive pages,
	// and a guard takes the backup while it serves calls.
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
	return &Writer{gz: gz, tw: tar.NewWriter(gz), m: Manifest{Format: Format, Created: created.UTC(), Version: version, Store: store}}
}

// SetHead sets the head of the log the manifest records.
func (w *Writer) SetHead(p Position) { w.m.Store.Head = p }

// Add writes one file: f describes it (its Size and SHA256 are filled in
// here), size is the number of bytes src writes.
func (w *Writer) Add(f File, size int64, src io.WriterTo) error {
	if w.err != nil {
		return w.err
	}
	f.Size, f.SHA256 = size, ""
	err := w.add(f, size, src)
	if err != nil {
		w.err = err
	}
	return err
}

func (w *Writer) add(f File, size int64, src io.WriterTo) error {
	// Validate with a placeholder hash: the real one is known at the end.
	probe := f
	probe.SHA256 = hex.EncodeToString(make([]byte, sha256.Size))
	if err := probe.validate(); err != nil {
		return fmt.Errorf("add %s: %w", f.Path, err)
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: 0o600, Size: size, ModTime: w.m.Created, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("add %s: %w", f.Path, err)
	}
	h := sha256.New()
	n, err := src.WriteTo(io.MultiWriter(w.tw, h))
	if err != nil {
		return fmt.Errorf("add %s: %w", f.Path, err)
	}
	if n != size {
		return fmt.Errorf("add %s: %d bytes written, %d announced", f.Path, n, size)
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	w.m.Files = append(w.m.Files, f)
	return nil
}

// Close checks the manifest, writes it and ends the archive. It does not
// close the underlying writer.
func (w *Writer) Close() (Manifest, error) {
	if w.err != nil {
		return Manifest{}, w.err
	}
	m := w.m
	if err := m.Validate(); err != nil {
		return Manifest{}, fmt.Errorf("write the manifest: %w", err)
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, fmt.Errorf("write the manifest: %w", err)
	}
	data = append(data, '\n')
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Mode: 0o600, Size: int64(len(data)), ModTime: m.Created, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return Manifest{}, fmt.Errorf("write the manifest: %w", err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return Manifest{}, fmt.Errorf("write the manifest: %w", err)
	}
	if err := w.tw.Close(); err != nil {
		return Manifest{}, fmt.Errorf("end the archive: %w", err)
	}
	if err := w.gz.Close(); err != nil {
		return Manifest{}, fmt.Errorf("end the archive: %w", err)
	}
	return m, nil
}

// Extract receives one file of an archive as Read reads it: its path and
// size as the archive's header says, and its content. It need not read
// it all.
type Extract func(path string, size int64, r io.Reader) error

// Read reads a whole archive from r and checks it: a gzipped tar of
// regular files with the names of a backup, each once, then the manifest
// (last); the manifest valid (Manifest.Validate), listing exactly the
// files read in their order, with their sizes and SHA-256; the gzip
// stream whole. Errors about the content wrap ErrInvalid and say what is
// wrong. Each file goes to extract (nil: checked only) as it is read,
// before the manifest at the end can vouch for it: a caller that keeps
// what extract gets must discard it when Read fails.
func Read(r io.Reader, extract Extract) (Manifest, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return Manifest{}, readErr("not a gzip stream", err)
	}
	gz.Multistream(false)
	tr := tar.NewReader(gz)
	var (
		read     []File
		manifest []byte
		seen     = map[string]bool{}
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Manifest{}, readErr("the archive", err)
		}
		switch {
		case manifest != nil:
			return Manifest{}, invalid("%q after the manifest", clip(hdr.Name))
		case hdr.Typeflag != tar.TypeReg:
			return Manifest{}, invalid("%q is not a regular file", clip(hdr.Name))
		case hdr.Size < 0:
			return Manifest{}, invalid("%q: size %d", clip(hdr.Name), hdr.Size)
		}
		if hdr.Name == ManifestName {
			if hdr.Size > maxManifest {
				return Manifest{}, invalid("a manifest of %d bytes", hdr.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return Manifest{}, readErr("the manifest", err)
			}
			continue
		}
		if !validPath.MatchString(hdr.Name) {
			return Manifest{}, invalid("%q is not a file of a backup", clip(hdr.Name))
		}
		if seen[hdr.Name] {
			return Manifest{}, invalid("%s is in the archive twice", hdr.Name)
		}
		if len(read) == maxFiles {
			return Manifest{}, invalid("more than %d files", maxFiles)
		}
		seen[hdr.Name] = true
		h := sha256.New()
		body := &archiveReader{r: io.TeeReader(tr, h)}
		if extract != nil {
			if err := extract(hdr.Name, hdr.Size, body); err != nil {
				if body.err != nil {
					// The archive failed the extractor, not the other
					// way round.
					return Manifest{}, readErr(hdr.Name, body.err)
				}
				return Manifest{}, fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return Manifest{}, readErr(hdr.Name, err)
		}
		read = append(read, File{Path: hdr.Name, Size: hdr.Size, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	if manifest == nil {
		return Manifest{}, invalid("no manifest: the archive was cut short, or is not a callguard backup")
	}
	// The gzip trailer checks the CRC and length of everything above.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return Manifest{}, readErr("the end of the archive", err)
	}
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return Manifest{}, invalid("the manifest: %v", err)
	}
	if err := m.Validate(); err != nil {
		return Manifest{}, err
	}
	if len(m.Files) != len(read) {
		return Manifest{}, invalid("the manifest lists %d files, the archive holds %d", len(m.Files), len(read))
	}
	for i, f := range m.Files {
		got := read[i]
		switch {
		case f.Path != got.Path:
			return Manifest{}, invalid("file %d is %s, the manifest says %s", i+1, got.Path, f.Path)
		case f.Size != got.Size:
			return Manifest{}, invalid("%s has %d bytes, the manifest says %d", f.Path, got.Size, f.Size)
		case f.SHA256 != got.SHA256:
			return Manifest{}, invalid("%s: SHA-256 %s, the manifest says %s: the file was altered or damaged", f.Path, got.SHA256, f.SHA256)
		}
	}
	return m, nil
}

// archiveReader remembers the archive's own read error, to tell it from
// an extractor's.
type archiveReader struct {
	r   io.Reader
	err error
}

func (a *archiveReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF && a.err == nil {
		a.err = err
	}
	return n, err
}

// readErr says that the archive could not be read, and when it ends
// early, that it was cut short.
func readErr(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %s: the archive was cut short (%v)", ErrInvalid, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
}

// clip bounds a name from the archive echoed in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
